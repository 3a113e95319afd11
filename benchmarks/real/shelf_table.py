"""The shelf benchmark's tables for docs/results.md, from the report's CSV files.

    .venv/bin/transferdet report benchmarks/real/shelf           # rebuilds the CSVs from the store
    .venv/bin/python benchmarks/real/shelf_table.py              # prints the Markdown tables

1. fine-tuned AP50 per source and target (mean of the trials, their range);
2. within one architecture (pretrained sources): every score's share of pairs right and mean group
   tau-b with 90% intervals, its gain over the best baseline (k-NN, linear probe), the noise ceiling;
3. the pre-registered rule: its candidates' criterion, the winner, and the winner's share on all
   pairs, on the new pairs alone (pairs with a source the first benchmark had not measured) and on
   the pairs of sources whose jobs all started from one checkpoint (README.md, "Machines");
4. the pooled scopes (all sources, pretrained sources: the card and the combined ranker among them);
5. pairs ordered right within and across architectures at the fixed setting (c5, background on).
"""

from __future__ import annotations

import csv
import importlib.util
import math
import sys
from pathlib import Path

from transferdet.bench.bootstrap import Interval
from transferdet.bench.config import load_config
from transferdet.bench.shelf_rule import rule_candidates, rule_winner
from transferdet.bench.within import pair_share_where
from transferdet.bench.within_summary import WITHIN_MEASURES, WithinSummary
from transferdet.models.specs import split_spec

HERE = Path(__file__).resolve().parent
OUT = HERE / "shelf"
OLD_SOURCES = {"mnv2-imagenet", "lite0-imagenet", "lite2-imagenet", "mnv2-thermal", "lite0-thermal"}  # bench.yaml's
OLD_TARGETS = {"bccd", "chess_pieces", "hardhat", "pothole"}
# sources whose fine-tunes and rankings started from two trainings of them on unlike CPUs (README.md, "Machines")
TWO_CHECKPOINTS = {"lite0-bccd", "mnv2-bccd", "mnv2-thermal", "lite0-thermal"}


def _results_table():
    spec = importlib.util.spec_from_file_location("results_table", HERE / "results_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _read(folder: Path, name: str) -> list[dict]:
    with open(folder / name, encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _number(text: str) -> float:
    return math.nan if text in ("", "nan", "None") else float(text)


def _interval_text(row: dict, name: str) -> str:
    value, low, high = (_number(row[f"{name}{s}"]) for s in ("", "_low", "_high"))
    if math.isnan(value):
        return "n/a"
    return f"{value:.2f} [{low:.2f}, {high:.2f}]" if not math.isnan(low) else f"{value:.2f}"


def within_table(rows: list[dict]) -> str:
    lines = ["| score | layer | features | pairs | share of pairs right | mean group τ-b | gain in share |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for row in rows:
        if row["pairs"] in ("0", ""):
            continue
        gain = _interval_text(row, "gain") if row["gain"] else ("-" if row["metric"] == "noise_ceiling" else "baseline")
        cells = [row["metric"], row["layer"], row["features"], row["pairs"],
                 *(_interval_text(row, m) for m in WITHIN_MEASURES), gain]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _summaries(rows: list[dict]) -> list[WithinSummary]:
    nan = math.nan
    rows = [r for r in rows if r["metric"] != "noise_ceiling"]
    return [
        WithinSummary(r["scope"], r["metric"], r["layer"], r["features"], int(r["pairs"]),
                      {m: Interval(_number(r[m]), nan, nan) for m in WITHIN_MEASURES}, None, None)
        for r in rows
    ]  # fmt: skip


def _is_new(a: str, b: str, target: str) -> bool:
    return target not in OLD_TARGETS or not {a, b} <= OLD_SOURCES


def rule_outcome(within_rows: list[dict], scores: list[dict], aps: list[dict], arch_of: dict[str, str]) -> str:
    candidates = rule_candidates(_summaries(within_rows))
    winner = rule_winner(candidates)
    if winner is None:
        return "The store does not yet hold every candidate of the rule in both background settings."
    mean_ap: dict[str, dict[str, list[float]]] = {}
    for row in aps:
        if row["key"] == "AP50":
            mean_ap.setdefault(row["dataset"], {}).setdefault(row["model"], []).append(_number(row["value"]))
    ap = {t: {m: sum(v) / len(v) for m, v in by.items()} for t, by in mean_ap.items()}
    shares = ", ".join(f"{f.split('+')[1]} {v:.3f}" for f, v in zip(("+bg0", "+bg2"), winner.shares, strict=True))
    lines = [
        f"Candidates: {len(candidates)}; winner: **{winner.metric} on {winner.layer}**, share {winner.share:.3f} "
        f"({shares}), group τ-b {winner.tau:.3f}.",
        "",
        "| features | pairs | share, all pairs | new pairs | share, new pairs | pairs, one checkpoint each | share |",
        "|---|---|---|---|---|---|---|",
    ]
    for features in ("local+bg0", "local+bg2"):
        found = [
            r for r in scores if (r["metric"], r["layer"], r["features"]) == (winner.metric, winner.layer, features)
        ]
        values = {}
        for row in found:
            if not math.isnan(_number(row["score"])):
                values.setdefault(row["dataset"], {})[row["model"]] = _number(row["score"])
        every = pair_share_where(values, ap, arch_of, keep=lambda a, b: True)
        fresh = [
            pair_share_where({t: v}, ap, arch_of, keep=lambda a, b, t=t: _is_new(a, b, t)) for t, v in values.items()
        ]
        right = sum(s * n for s, n in fresh if n)
        count = sum(n for _, n in fresh)
        single = pair_share_where(values, ap, arch_of, keep=lambda a, b: not {a, b} & TWO_CHECKPOINTS)
        lines.append(f"| {features} | {every[1]} | {every[0]:.3f} | {count} | "
                     f"{(right / count) if count else math.nan:.3f} | {single[1]} | {single[0]:.3f} |")  # fmt: skip
    return "\n".join(lines)


def tables(folder: Path) -> str:
    """Every table of docs/results.md's shelf section, from the report's CSV files in ``folder``."""
    table = _results_table()
    aps, scores = _read(folder, "ap.csv"), _read(folder, "scores.csv")
    within = _read(folder, "within.csv")
    models = load_config(HERE / "shelf.yaml").all_models()
    arch_of = {m.name: split_spec(m.spec)[0] for m in models if split_spec(m.spec)[1] != "random"}
    return "\n\n".join([
        table.ap_table(aps),
        within_table(within),
        rule_outcome(within, scores, aps, arch_of),
        table.markdown(_read(folder, "correlations.csv")),
        table.pair_agreement(scores, aps, list(arch_of)),
    ])  # fmt: skip


def main() -> None:
    print(tables(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT))


if __name__ == "__main__":
    main()
