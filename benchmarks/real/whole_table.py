"""The whole-transfer measurement's tables (issue 43; the pre-registered analysis of README.md),
from the store alone:

    .venv/bin/python benchmarks/real/whole_table.py [benchmarks/real/whole/results.sqlite]

1. paired gains whole - body and whole - ImageNet, AP50 and AP, pooled and per architecture, with
   90% hierarchical bootstrap intervals (targets, sources within target, trials);
2. the within-architecture noise ceiling of whole sources (trial 0 against trial 1);
3. the iteration at which a whole run reaches the body-only run's final AP50.
Rankers' shares (question 2) come with the ranking jobs, after the fine-tunes.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from collections import Counter
from pathlib import Path

from transferdet.bench.whole_gains import hierarchical_mean, noise_ceiling, paired, reach_iteration

STORE = Path(__file__).resolve().parent / "whole" / "results.sqlite"
ARCHITECTURES = ("mnv2", "lite0", "lite2")
TARGETS = ("bccd", "chess_pieces", "hardhat", "pothole")


def rows(store: Path) -> list[dict]:
    """One row per finished fine-tune on the four targets: its transfer and its AP keys."""
    db = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    jobs = db.execute("SELECT id, dataset, model, trial, definition FROM jobs WHERE kind='train' AND status='done'")
    out = {}
    for job_id, dataset, model, trial, definition in jobs:
        if dataset in TARGETS:
            out[job_id] = {"dataset": dataset, "model": model, "trial": trial,
                           "transfer": json.loads(definition).get("transfer")}  # fmt: skip
    for job_id, key, value in db.execute("SELECT job_id, key, value FROM ap"):
        if job_id in out:
            out[job_id][key] = value
    db.close()
    return list(out.values())


def _line(name: str, pairs: list) -> str:
    if not pairs:
        return f"| {name} | 0 | - |"
    found = hierarchical_mean(pairs)
    return f"| {name} | {len(pairs)} | {found.value:+.3f} [{found.low:+.3f}, {found.high:+.3f}] |"


def gains(found: list[dict]) -> list[str]:
    sources = {r["model"] for r in found if r["transfer"] == "whole"}
    parent = {m: f"{m.split('-')[0]}-imagenet" for m in sources}
    lines = ["| comparison | pairs | mean gain [90% interval] |", "| --- | --- | --- |"]
    for key in ("AP50", "AP"):
        for label, against in (("body", None), ("ImageNet", parent)):
            every = paired(found, key, against)
            lines.append(_line(f"whole - {label}, {key}, all", every))
            for arch in ARCHITECTURES:
                lines.append(_line(f"whole - {label}, {key}, {arch}", [p for p in every if p.source.startswith(arch)]))
    return lines


def main(store: Path) -> None:
    found = rows(store)
    whole = [r for r in found if r["transfer"] == "whole"]
    print(f"whole fine-tunes done: {len(whole)} of 96\n")
    print("\n".join(gains(found)))
    share, count = noise_ceiling(found, {r["model"]: r["model"].split("-")[0] for r in whole})
    print(f"\nnoise ceiling (whole sources, within architecture): {share:.2f} over {count} pairs")
    reached = Counter(reach_iteration(found).values())
    shown = ", ".join(f"{step if step is not None else 'never'}: {n}" for step, n in sorted(reached.items(), key=str))
    print(f"iteration at which whole reaches body's final AP50 (pairs): {shown or '-'}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else STORE)
