"""The real benchmark's table for docs/results.md, from the report's correlations.csv.

    .venv/bin/transferdet report benchmarks/real/out         # rebuilds correlations.csv from the store
    .venv/bin/python benchmarks/real/results_table.py        # prints the Markdown tables

Per score (metric or baseline), pooled over the targets, in each scope: Kendall tau, weighted tau,
Pearson and top-1 regret with their 90% bootstrap intervals, and the gain in tau over the best
baseline; then Kendall tau per target. Best pooled tau first; each score at its best layer and
background setting only (all of them are in correlations.csv).
"""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"
MEASURES = ("kendall", "weighted_tau", "pearson", "top1_regret")


def _number(text: str) -> float:
    return float(text) if text not in ("", "nan", "None") else math.nan


def _interval(row: dict, name: str) -> str:
    value, low, high = (_number(row[f"{name}{suffix}"]) for suffix in ("", "_low", "_high"))
    if math.isnan(value):
        return "n/a"
    return f"{value:.2f} [{low:.2f}, {high:.2f}]" if not math.isnan(low) else f"{value:.2f}"


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


def table(rows: list[dict], scope: str) -> str:
    targets = sorted({r["dataset"] for r in rows if r["dataset"] != "(pooled)"})
    header = ["score", "layer", "features", "Kendall τ", "weighted τ", "Pearson", "top-1 regret", "gain in τ"]
    lines = ["| " + " | ".join(header + targets) + " |", "|" + "---|" * (len(header) + len(targets))]
    pooled = [r for r in rows if r["scope"] == scope and r["dataset"] == "(pooled)"]
    for row in _best_variant(pooled):
        cells = [row["metric"], row["layer"], row["features"], *(_interval(row, m) for m in MEASURES)]
        cells.append(_interval({**row, "gain": row["gain"]}, "gain") if row["gain"] else "baseline")
        per = _per_target(rows, scope, row["metric"], row["layer"], row["features"])
        cells += [f"{per[t]:.2f}" if t in per and not math.isnan(per[t]) else "n/a" for t in targets]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else OUT / "correlations.csv"
    with open(path, encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    for scope in dict.fromkeys(r["scope"] for r in rows):
        print(f"**{scope}**\n\n{table(rows, scope)}\n")


if __name__ == "__main__":
    main()
