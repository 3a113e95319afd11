"""The real benchmark's table for docs/results.md, from the report's correlations.csv.

    .venv/bin/transferdet report benchmarks/real/out         # rebuilds correlations.csv from the store
    .venv/bin/python benchmarks/real/results_table.py        # prints the Markdown tables

First the fine-tuned AP50 of every source on every target (ap.csv), then the correlations.

Per score (metric or baseline), pooled over the targets, in each scope: Kendall tau, weighted tau,
Pearson and top-1 regret with their 90% bootstrap intervals, and the gain in tau over the best
baseline; then Kendall tau per target. Three views:

- *fixed*: every score at one setting chosen before the results, c5 with background RoIs
  (``rank``'s default layer; background on, the one setting that scores single-class pothole);
- *mean over settings*: each score's pooled tau averaged over its four settings (c4/c5 x
  background off/on), the selection-free summary ``rank``'s default order is chosen by;
- *best setting*: each score at its best layer and background setting, which flatters every
  metric (the best of four) and the baselines less (static ones have one setting).
"""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path

from transferdet.bench.config import load_config
from transferdet.models.specs import split_spec
from transferdet.ties import tied

OUT = Path(__file__).resolve().parent / "out"
CONFIG = Path(__file__).resolve().parent / "bench.yaml"
MEASURES = ("kendall", "weighted_tau", "pearson", "top1_regret")


def _number(text: str | float | None) -> float:
    """A CSV cell (or the store's value) as a float; empty or missing is NaN."""
    return math.nan if text is None or text in ("", "nan", "None") else float(text)


def _interval(row: dict, name: str) -> str:
    value, low, high = (_number(row[f"{name}{suffix}"]) for suffix in ("", "_low", "_high"))
    if math.isnan(value):
        return "n/a"
    return f"{value:.2f} [{low:.2f}, {high:.2f}]" if not math.isnan(low) else f"{value:.2f}"


FIXED = ("c5", "local+bg2")


def _fixed_variant(rows: list[dict]) -> list[dict]:
    """Each score at :data:`FIXED` (static scores at their one setting)."""
    chosen = [r for r in rows if (r["layer"], r["features"]) in (FIXED, ("-", "-"))]
    return sorted(chosen, key=lambda r: -_nan_last(_number(r["kendall"])))


def _nan_last(value: float) -> float:
    return -math.inf if math.isnan(value) else value


def mean_over_settings(rows: list[dict], scope: str) -> list[tuple[str, float, int]]:
    """(score, mean pooled tau over its settings, number of settings), best first."""
    taus: dict[str, list[float]] = {}
    for row in rows:
        if row["scope"] == scope and row["dataset"] == "(pooled)":
            taus.setdefault(row["metric"], []).append(_number(row["kendall"]))
    means = [(m, sum(t) / len(t), len(t)) for m, t in taus.items() if not any(math.isnan(v) for v in t)]
    return sorted(means, key=lambda item: -item[1])


def _best_variant(rows: list[dict]) -> list[dict]:
    """Each metric's row with the highest pooled tau (its best layer and background setting)."""
    best: dict[str, dict] = {}
    for row in rows:
        tau = _number(row["kendall"])
        if not math.isnan(tau) and (row["metric"] not in best or tau > _number(best[row["metric"]]["kendall"])):
            best[row["metric"]] = row
    return sorted(best.values(), key=lambda r: -_number(r["kendall"]))


def _per_target(rows: list[dict], scope: str, metric: str, layer: str, features: str) -> dict[str, float]:
    return {
        r["dataset"]: _number(r["kendall"])
        for r in rows
        if (r["scope"], r["metric"], r["layer"], r["features"]) == (scope, metric, layer, features)
        and r["dataset"] != "(pooled)"
    }


def table(rows: list[dict], scope: str, view: str = "best") -> str:
    targets = sorted({r["dataset"] for r in rows if r["dataset"] != "(pooled)"})
    header = ["score", "layer", "features", "Kendall τ", "weighted τ", "Pearson", "top-1 regret", "gain in τ"]
    lines = ["| " + " | ".join(header + targets) + " |", "|" + "---|" * (len(header) + len(targets))]
    pooled = [r for r in rows if r["scope"] == scope and r["dataset"] == "(pooled)"]
    for row in _best_variant(pooled) if view == "best" else _fixed_variant(pooled):
        cells = [row["metric"], row["layer"], row["features"], *(_interval(row, m) for m in MEASURES)]
        cells.append(_interval({**row, "gain": row["gain"]}, "gain") if row["gain"] else "baseline")
        per = _per_target(rows, scope, row["metric"], row["layer"], row["features"])
        cells += [f"{per[t]:.2f}" if t in per and not math.isnan(per[t]) else "n/a" for t in targets]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown(rows: list[dict]) -> str:
    """The docs' tables from correlations.csv's rows (values as the CSV holds them: text)."""
    scopes = list(dict.fromkeys(r["scope"] for r in rows))
    parts = []
    for view, title in (("fixed", f"at {FIXED[0]}, {FIXED[1]}"), ("best", "at its best setting")):
        for scope in scopes:
            parts.append(f"**{scope}, each score {title}**\n\n{table(rows, scope, view)}\n")
    for scope in scopes:
        lines = [
            f"**{scope}, pooled Kendall τ averaged over settings**\n",
            "| score | mean τ | settings |",
            "|---|---|---|",
        ]
        lines += [f"| {metric} | {mean:.2f} | {count} |" for metric, mean, count in mean_over_settings(rows, scope)]
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


def ap_table(rows: list[dict], key: str = "AP50") -> str:
    """Fine-tuned ``key`` per source (rows) and target (columns): mean of the trials, and the
    trials' range in brackets, from ap.csv's rows."""
    values = _ap_trials(rows, key)
    models = list(dict.fromkeys(model for _, model in values))
    targets = list(dict.fromkeys(target for target, _ in values))
    lines = ["| source | " + " | ".join(targets) + " |", "|" + "---|" * (len(targets) + 1)]
    for model in models:
        cells = []
        for target in targets:
            trials = values.get((target, model), [])
            spread = f" [{min(trials):.3f}-{max(trials):.3f}]" if len(trials) > 1 else ""
            cells.append(f"{sum(trials) / len(trials):.3f}{spread}" if trials else "n/a")
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _ap_trials(ap_rows: list[dict], key: str = "AP50") -> dict[tuple[str, str], list[float]]:
    """(target, source) -> the trials' ``key``."""
    values: dict[tuple[str, str], list[float]] = {}
    for row in ap_rows:
        if row["key"] == key:
            values.setdefault((row["dataset"], row["model"]), []).append(_number(row["value"]))
    return values


def _mean_ap(ap_rows: list[dict], key: str = "AP50") -> dict[tuple[str, str], float]:
    """(target, source) -> mean ``key`` over the trials."""
    return {pair: sum(v) / len(v) for pair, v in _ap_trials(ap_rows, key).items()}


def pair_agreement(score_rows: list[dict], ap_rows: list[dict], sources: list[str]) -> str:
    """For each score at :data:`FIXED`, the share of pairs of ``sources`` (within a target) that it
    orders as fine-tuning does (a tie within ``ties.TIE_RTOL`` orders nothing), split into pairs of
    one architecture (the name's part before the first ``-``) and pairs of two: does a score tell
    good weights apart, or architectures?"""
    ap = _mean_ap(ap_rows)
    found: dict[str, dict[str, list[int]]] = {}
    by_key = {(r["dataset"], r["model"], r["layer"], r["features"], r["metric"]): r for r in score_rows}
    targets = list(dict.fromkeys(target for target, _ in ap))
    metrics = list(dict.fromkeys(r["metric"] for r in score_rows))
    for metric in metrics:
        counts = found.setdefault(metric, {"same": [0, 0, 0], "across": [0, 0, 0]})  # agree, pairs, tied
        for target in targets:
            score = {}
            for source in sources:
                row = by_key.get((target, source, *FIXED, metric)) or by_key.get((target, source, "-", "-", metric))
                if row is not None and not math.isnan(_number(row["score"])) and (target, source) in ap:
                    score[source] = _number(row["score"])
            for i, a in enumerate(sources):
                for b in sources[i + 1 :]:
                    if a in score and b in score and ap[(target, a)] != ap[(target, b)]:
                        kind = "same" if a.split("-")[0] == b.split("-")[0] else "across"
                        together = tied(score[a], score[b])  # within the tolerance rank uses
                        product = (score[a] - score[b]) * (ap[(target, a)] - ap[(target, b)])
                        counts[kind][0] += int(product > 0 and not together)
                        counts[kind][1] += 1
                        counts[kind][2] += int(together)
    lines = ["| score | same architecture | across architectures |", "|---|---|---|"]
    for metric, counts in found.items():
        cells = [
            f"{hit}/{total} ({hit / total:.0%})" + (f", {tied} tied" if tied else "") if total else "n/a"
            for hit, total, tied in counts.values()
        ]
        if any(total for _, total, _ in counts.values()):
            lines.append(f"| {metric} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def pretrained_sources(config: Path = CONFIG) -> list[str]:
    """The bench's sources with trained weights (all but the randomly initialised), in its order."""
    return [model.name for model in load_config(config).models if split_spec(model.spec)[1] not in (None, "random")]


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else OUT
    for name, render in (("ap.csv", ap_table), ("correlations.csv", markdown)):
        with open(folder / name, encoding="utf-8") as handle:
            print(render(list(csv.DictReader(handle))) + "\n")
    with open(folder / "scores.csv", encoding="utf-8") as scores, open(folder / "ap.csv", encoding="utf-8") as aps:
        agreement = pair_agreement(list(csv.DictReader(scores)), list(csv.DictReader(aps)), pretrained_sources())
    print(f"**pairs of pretrained sources ordered as fine-tuning orders them, at {FIXED[0]}, {FIXED[1]}**\n")
    print(agreement)


if __name__ == "__main__":
    main()
