"""The report of a benchmark of select (a config's ``select`` section): every race's pick against the
static picks, as regret against cost (:mod:`~transferdet.bench.regret`), and how well the first
rung's validation AP orders the sources as their full fine-tunes do. Read from this benchmark's
store (its races) and the reference benchmark's store (every source's fine-tunes on every target).
Writes ``select_regret.csv``, ``select_regret.json``, ``early_rungs.csv``, ``regret.png`` and
``early_rungs.png``.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np

from transferdet.atomic import atomic_write_bytes
from transferdet.bench.bootstrap import kendall_tau_b
from transferdet.bench.plots import pyplot, save_png, titled
from transferdet.bench.regret import RACE, RANDOM, RaceOutcome, RegretRow, regret_rows, top_ties
from transferdet.bench.store import STORE_FILE, Store
from transferdet.errors import TransferdetError
from transferdet.transfer.combined import card_then_metric
from transferdet.transfer.recommended import METRIC as RECOMMENDED

STATIC = {"card top-1": "imagenet_top1", "model size": "model_size", f"{RECOMMENDED} alone": RECOMMENDED,
          "k-NN": "knn"}  # fmt: skip
COMBINED = f"recommended (card, then {RECOMMENDED})"  # rank's recommended line (transfer/combined.py)


def reference_trials(reference: Path, target: str = "AP50") -> dict[str, dict[str, np.ndarray]]:
    """Each target's sources' test ``target`` of every fine-tuning trial, from the reference store."""
    if not (reference / STORE_FILE).exists():
        raise TransferdetError(f"{reference / STORE_FILE}: no reference store (the benchmark whose sources are raced)")
    found: dict[str, dict[str, list[float]]] = {}
    with Store(reference / STORE_FILE) as store:
        for row in store.ap():
            if row["key"] == target and row["value"] is not None:
                found.setdefault(row["dataset"], {}).setdefault(row["model"], []).append(row["value"])
    return {t: {m: np.array(v) for m, v in by.items()} for t, by in found.items()}


def race_outcomes(bench_dir: Path) -> list[RaceOutcome]:
    """Every done race with its pick and the static picks among the same sources."""
    with Store(bench_dir / STORE_FILE) as store:
        races = store.races()
        definitions = {j["id"]: json.loads(j["definition"]) for j in store.jobs([r["job_id"] for r in races])}
    outcomes = []
    for race in races:
        summary = race["summary"]
        cards = {c["name"]: c.get("imagenet_top1") for c in definitions[race["job_id"]]["candidates"]}
        screen = {c["model"]: c["screen"] for c in summary["candidates"]}
        picks = {RACE: [summary["winner"]]}
        for label, score in STATIC.items():
            values = cards if score == "imagenet_top1" else {m: s.get(score) for m, s in screen.items()}
            picks[label] = top_ties(values)
        metric = {m: s[RECOMMENDED] for m, s in screen.items() if s.get(RECOMMENDED) is not None}
        picks[COMBINED] = top_ties(card_then_metric(cards, metric)) if metric else list(screen)
        picks[RANDOM] = list(screen)
        cost = summary["cost"]["fraction_of_all"]
        outcomes.append(RaceOutcome(race["dataset"], race["seed"], summary["budget"], cost, picks))
    return outcomes


def early_rungs(bench_dir: Path, trials: dict[str, dict[str, np.ndarray]]) -> list[dict]:
    """Per race: the first rung's iteration, Kendall's tau-b between every source's validation AP50
    there and its mean test AP50 in the reference, and whether the rung's leader is the best source."""
    with Store(bench_dir / STORE_FILE) as store:
        races = store.races()
    rows = []
    for race in races:
        summary, target = race["summary"], race["dataset"]
        first = str(summary["plan"]["rungs"][0])
        seen = {c["model"]: c["rungs"].get(first) for c in summary["candidates"]}
        seen = {m: v for m, v in seen.items() if v is not None and m in trials.get(target, {})}
        if len(seen) < 2:  # the reference has not fine-tuned these sources yet
            continue
        final = {m: float(trials[target][m].mean()) for m in seen}
        leader, best = max(seen, key=seen.get), max(final, key=final.get)
        tau = kendall_tau_b(np.array(list(seen.values())), np.array(list(final.values())))
        rows.append({"target": target, "seed": race["seed"], "budget": summary["budget"], "rung": int(first),
                     "of": summary["plan"]["total"], "sources": len(seen), "kendall_tau_b": round(tau, 4),
                     "leader_is_best": leader == best})  # fmt: skip
    return rows


def write_select_report(bench_dir: Path, reference: Path, count: int = 1000) -> list[RegretRow]:
    """Compute the regret table and the early-rung rows; write them and the figure into ``bench_dir``."""
    trials = reference_trials(reference)
    outcomes = [o for o in race_outcomes(bench_dir) if o.target in trials]
    if not outcomes:
        raise TransferdetError(f"{bench_dir / STORE_FILE}: no finished race with reference fine-tunes yet")
    rows = regret_rows(outcomes, trials, count=count)
    flat = [_flat(r) for r in rows]
    _write_csv(bench_dir / "select_regret.csv", flat)
    atomic_write_bytes(bench_dir / "select_regret.json", json.dumps(flat, indent=1).encode())
    early = early_rungs(bench_dir, trials)
    _write_csv(bench_dir / "early_rungs.csv", early)
    write_regret_figure(rows, bench_dir / "regret.png")
    write_early_rung_figure(early, bench_dir / "early_rungs.png")
    return rows


def _flat(row: RegretRow) -> dict:
    flat = {"budget": row.budget, "picker": row.picker, "races": row.races, "cost": round(row.cost, 4)}
    for name, value in (("regret", row.regret), ("race_minus_this", row.race_minus_this)):
        for part in ("value", "low", "high"):
            flat[f"{name}_{part}"] = None if value is None else round(getattr(value, part), 4)
    return flat


def _write_csv(path: Path, rows: list[dict]) -> None:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]) if rows else [])
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(path, text.getvalue().encode())


def write_regret_figure(rows: list[RegretRow], path: Path) -> Path:
    """Mean regret (with its interval) against the races' cost; the static picks as levels."""
    return save_png(regret_figure(rows), path)


def regret_figure(rows: list[RegretRow]):  # noqa: ANN201 - a matplotlib Figure
    """The figure: cost on its whole range (0 to fine-tuning all), regret from 0 past the highest
    interval or level with a margin, the legend outside the axes, at their right."""
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(7.6, 4.0))
    race = sorted((r for r in rows if r.picker == RACE), key=lambda r: r.cost)
    axes.errorbar(
        [r.cost for r in race],
        [r.regret.value for r in race],
        capsize=3,
        marker="o",
        label="select",
        yerr=[[r.regret.value - r.regret.low for r in race], [r.regret.high - r.regret.value for r in race]],
    )
    colours = iter(f"C{i}" for i in range(1, 10))
    levels = []
    for picker in dict.fromkeys(r.picker for r in rows if r.picker != RACE):
        levels.append(float(np.mean([r.regret.value for r in rows if r.picker == picker])))
        axes.axhline(levels[-1], linestyle=":" if picker == RANDOM else "--", linewidth=1, label=picker,
                     color=next(colours))  # fmt: skip
    top = max([r.regret.high for r in race] + levels + [0.0])
    axes.set_xlim(0.0, max(1.0, max((r.cost for r in race), default=0.0)) * 1.02)
    axes.set_ylim(min(0.0, min((r.regret.low for r in race), default=0.0)), top * 1.1 + 1e-3)
    titled(axes, "cost (fraction of fine-tuning every source)", "regret (test AP50)", "select: regret against cost")
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    return figure


def write_early_rung_figure(rows: list[dict], path: Path) -> Path:
    """Kendall's tau-b between the first rung's validation AP50 and the full fine-tunes' test AP50,
    against how far into the schedule the rung stops: one point per race, the mean per rung."""
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(6.0, 3.6))
    for target in sorted({r["target"] for r in rows}):
        mine = [r for r in rows if r["target"] == target]
        axes.scatter([r["rung"] / r["of"] for r in mine], [r["kendall_tau_b"] for r in mine], label=target, s=18)
    fractions = sorted({r["rung"] / r["of"] for r in rows})
    means = [float(np.nanmean([r["kendall_tau_b"] for r in rows if r["rung"] / r["of"] == f])) for f in fractions]
    axes.plot(fractions, means, color="black", linewidth=1, label="mean")
    axes.axhline(0, color="0.8", linewidth=0.8, zorder=0)
    titled(axes, "first rung (fraction of the schedule)", "Kendall τ-b with the full fine-tunes",
           "does the first rung see the final order?")  # fmt: skip
    return save_png(figure, path)
