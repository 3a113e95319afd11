"""How well does a source's validation AP50 at iteration r order the sources as their full
fine-tunes do? The curve that select's minimum first rung is chosen from (issue 29).

On each target of select_curve.yaml, every source's race run (the recipe's full 200-iteration
schedule, the seeded validation split carved from the training images, exactly what a race trains)
is stopped at each iteration of RUNGS and evaluated on the validation split; at each r, Kendall's
tau-b between the sources' validation AP50 and their mean test AP50 over the reference benchmark's
fine-tunes (out/results.sqlite), with a bootstrap interval over the sources, and whether the leader
at r is the best source. Resumable: a run folder answers the rungs it has reached.

    ../transferdet-select/.venv/bin/python benchmarks/real/early_curve.py   # from the repository root

Writes benchmarks/real/select-curve/early_curve.csv and early_curve.png (the run folders go to
early-curve-runs/ there, not committed). Not beside other CPU work: it trains (~30 min on 2 cores).
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

from transferdet.bench.bootstrap import kendall_tau_b
from transferdet.bench.config import load_config
from transferdet.bench.plots import pyplot
from transferdet.bench.select_report import reference_trials
from transferdet.select.bench_jobs import SelectDefinition
from transferdet.select.rung_jobs import inline_trainer

HERE = Path(__file__).resolve().parent
RUNGS = [5, 10, 15, 20, 25, 35, 50]
SEED = 0
DRAWS = 2000


def validation_curve(target: str, folder: Path) -> dict[str, dict[int, float]]:
    """Each source's validation AP50 at every rung of RUNGS, from its race run on ``target``."""
    config = load_config(HERE / "select_curve.yaml")
    dataset = next(d for d in config.datasets if d.name == target)
    candidates = config.models_for(target)
    definition = SelectDefinition(
        data={"path": str(dataset.path), "format": dataset.format}, candidates=candidates,
        detector=config.detector, recipe=config.recipe, recipe_overrides=config.recipe_overrides, budget=1.0,
        eta=3, seed=SEED, device="cpu", image_size=config.image_size, max_images=config.max_images,
        out=str(folder),
    )  # fmt: skip
    settings = definition.settings(folder / "feature-cache")
    order = [c.name for c in candidates]
    train_rung = inline_trainer(settings.runs(dataset.path, folder / target), order)
    curve: dict[str, dict[int, float]] = {name: {} for name in order}
    for rung in RUNGS:
        print(f"{target}: iteration {rung}", file=sys.stderr, flush=True)
        for name, record in train_rung(order, rung).items():
            if "error" in record:
                raise SystemExit(f"{target}/{name}: {record['error']}")
            curve[name][rung] = record["AP50"]
    return curve


def tau_rows(target: str, curve: dict[str, dict[int, float]], final: dict[str, float]) -> list[dict]:
    """At each rung: tau-b against the final mean test AP50, a 90% bootstrap interval over the
    sources (resampled with replacement, the same draws at every rung), and the leader's check."""
    names = sorted(final)
    draws = np.random.default_rng(0).integers(0, len(names), size=(DRAWS, len(names)))
    best = max(names, key=final.get)
    y = np.array([final[n] for n in names])
    rows = []
    for rung in RUNGS:
        x = np.array([curve[n][rung] for n in names])
        boot = np.array([kendall_tau_b(x[d], y[d]) for d in draws])
        low, high = np.nanpercentile(boot, [5, 95])
        leader = max(names, key=lambda n: curve[n][rung])
        rows.append({"target": target, "seed": SEED, "iteration": rung, "sources": len(names),
                     "kendall_tau_b": round(kendall_tau_b(x, y), 4), "low": round(low, 4), "high": round(high, 4),
                     "leader_is_best": leader == best})  # fmt: skip
    return rows


def write_figure(rows: list[dict], path: Path) -> None:
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(6.4, 3.8))
    for target in sorted({r["target"] for r in rows}):
        mine = [r for r in rows if r["target"] == target]
        x = [r["iteration"] for r in mine]
        axes.plot(x, [r["kendall_tau_b"] for r in mine], marker="o", label=target)
        axes.fill_between(x, [r["low"] for r in mine], [r["high"] for r in mine], alpha=0.15)
    axes.axvspan(0, 50, color="0.92", zorder=0, label="warmup (50 iterations)")
    axes.axhline(0, color="0.6", linewidth=0.8)
    axes.set_xlabel("iteration of the 200-iteration run (quick, 256 px)")
    axes.set_ylabel("Kendall tau-b: validation AP50 vs final test AP50")
    axes.set_title("How early does a rung see the final order? (8 sources)")
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> None:
    folder = HERE / "select-curve"
    trials = reference_trials(HERE / "out")
    rows = []
    for target in ("chess_pieces", "pothole"):
        curve = validation_curve(target, folder / "early-curve-runs")
        final = {name: float(trials[target][name].mean()) for name in curve}
        rows += tau_rows(target, curve, final)
    with (folder / "early_curve.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    write_figure(rows, folder / "early_curve.png")
    for row in rows:
        print(row)


if __name__ == "__main__":
    main()
