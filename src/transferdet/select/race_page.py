"""select's race as a page (``race.md`` and ``race.html``, the curves inline): the pick and its
cost, every candidate's screen scores, validation score at each rung and where it stopped."""

from __future__ import annotations

import base64
from pathlib import Path

from transferdet.bench.report import Document


def race_rows(summary: dict) -> tuple[list[str], list[list[str]]]:
    """The race's table: one row per candidate in the screen's order (what the CLI prints too)."""
    rungs = summary["plan"]["rungs"]
    screened = list(dict.fromkeys(m for row in summary["candidates"] for m in row["screen"]))
    header = ["model", *screened, *(f"it {r}" for r in rungs), "ms (IQR)", "params M", "GFLOPs", "stopped"]
    rows = []
    for row in summary["candidates"]:
        screen = ["" if row["screen"].get(m) is None else f"{row['screen'][m]:.3g}" for m in screened]
        reached = ["" if row["rungs"].get(str(r)) is None else f"{row['rungs'][str(r)]:.3f}" for r in rungs]
        rows.append([row["model"], *screen, *reached, *_cost_cells(row), row["stopped"]])
    return header, rows


def _cost_cells(row: dict) -> list[str]:
    """Latency as median (first-third quartile), parameters and FLOPs; blank for a candidate not raced."""
    if row.get("latency_ms") is None:
        return ["", "", ""]
    low, high = row["latency_iqr_ms"]
    return [
        f"{row['latency_ms']:.1f} ({low:.1f}-{high:.1f})",
        f"{row['params'] / 1e6:.2f}",
        f"{row['flops'] / 1e9:.2f}",
    ]


def pick_line(summary: dict) -> str:
    """One line: the pick, its validation score where it last met the others, its test AP50, the cost."""
    winner = next(row for row in summary["candidates"] if row["model"] == summary["winner"])
    last = max(winner["rungs"], key=int)
    test = summary["final"].get("AP50")
    return (
        f"pick: {summary['winner']} (validation {summary['target']} {winner['rungs'][last]:.3f} at iteration "
        f"{last}; test AP50 {'n/a' if test is None else f'{test:.3f}'} after the full recipe), for "
        f"{summary['cost']['fraction_of_all']:.2f} of fine-tuning all; its run: {summary['winner_run']}"
    )


def tie_line(summary: dict) -> str:
    """ "tied within +-x AP50: A, B, C" (the pick first), or that nothing ties it."""
    tolerance = summary.get("tolerance", {}).get("value")
    if tolerance is None:
        return ""
    if len(summary["tied"]) > 1:
        return f"tied within ±{tolerance:.3f} {summary['target']}: {', '.join(summary['tied'])} ({summary['stop']})"
    return f"no candidate within ±{tolerance:.3f} {summary['target']} of the pick ({summary['stop']})"


def noise_paragraph(summary: dict) -> str:
    """What the race judged its differences by, where it stopped, what it spent and saved."""
    noise = summary.get("noise")
    if noise is None:
        return ""
    return (
        f"Race: {summary['race']}, stopped at the {summary['stop']}. A candidate ties the leader when it trails by "
        f"no more than max(--tolerance {noise['tolerance_option']:g}, {noise['se_multiple']:g} x sqrt(sd_seed^2 + "
        f"se_image^2)): seed noise sd {noise['sd_seed']:g} AP50 ({noise['seed_source']}); image noise by "
        f"{noise['image']}. Spent {summary['spent']} iterations of the {summary['cost']['planned']} planned "
        f"(saved {summary['saved']})."
    )


def write_race_page(summary: dict, out: Path) -> Path:
    """``race.md`` and ``race.html`` in ``out`` (the curves as ``plots/curves.png`` and inline)."""
    doc = Document(out)
    doc.heading("select: the race", 1)
    doc.paragraph(pick_line(summary))
    for line in (tie_line(summary), noise_paragraph(summary)):
        if line:
            doc.paragraph(line)
    plan = summary["plan"]
    doc.paragraph(
        f"Rungs at iterations {', '.join(map(str, plan['rungs']))} of {plan['total']} (eta {plan['eta']}), "
        f"{summary['cost']['iterations']} iterations trained in all; budget {summary.get('budget', 'n/a')}."
    )
    doc.table(*race_rows(summary))
    inference = summary.get("inference", {})
    device = next((row["device"] for row in summary["candidates"] if row.get("device")), None)
    if device is not None:
        doc.paragraph(f"Inference cost of each raced candidate's run: batch 1 at the recipe's test size, NMS "
                      f"included, {inference.get('threads')} thread(s), median and interquartile range of the "
                      f"timed runs after warm-up, on {device}; FLOPs by {inference.get('flops')}.")  # fmt: skip
    figures = {"curves": f"validation {summary['target']} at each rung",
               "pareto": "validation score against latency, the Pareto front joined"}  # fmt: skip
    for name, caption in figures.items():
        png = Path(summary[name]) if summary.get(name) else None
        if png is not None and png.exists():
            doc.plot(name, base64.b64encode(png.read_bytes()).decode(), caption)
    doc.write(out / "race.md", out / "race.html", "transferdet select: the race")
    return out / "race.html"
