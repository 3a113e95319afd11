"""The whole-transfer measurement's tables (issue 43; the pre-registered analysis of README.md),
from the store alone:

    .venv/bin/python benchmarks/real/whole_table.py [STORE]                # print them
    .venv/bin/python benchmarks/real/whole_table.py --staged --write-docs  # docs/results.md's copy of
                                                   # the store snapshot.sh staged (the commit's)

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


def tables(store: Path) -> str:
    """The measurement's tables as markdown, as docs/results.md holds them between its markers."""
    found = rows(store)
    whole = [r for r in found if r["transfer"] == "whole"]
    share, count = noise_ceiling(found, {r["model"]: r["model"].split("-")[0] for r in whole})
    reached = Counter(reach_iteration(found).values())
    shown = ", ".join(f"{step if step is not None else 'never'}: {n}" for step, n in sorted(reached.items(), key=str))
    ceiling = f"{share:.2f} over {count} pairs" if count else "no pair of whole sources of one architecture yet"
    return "\n".join([
        f"Whole fine-tunes done: {len(whole)} of 96.", "", *gains(found), "",
        f"- Noise ceiling (whole sources, within architecture, trial 0 against trial 1): {ceiling}.",
        f"- Iteration at which the whole run reaches the body-only run's final AP50 (pairs): {shown or '-'}.",
    ])  # fmt: skip


BEGIN, END = "<!-- whole-table:begin -->", "<!-- whole-table:end -->"


def write_docs(store: Path, docs: Path) -> None:
    """Replace what docs holds between the markers with :func:`tables` of the store."""
    text = docs.read_text(encoding="utf-8")
    head, rest = text.split(BEGIN, 1)
    docs.write_text(f"{head}{BEGIN}\n{tables(store)}\n{END}{rest.split(END, 1)[1]}", encoding="utf-8")


def _staged(store: Path) -> Path:
    """The copy of the store that ``snapshot.sh whole`` staged for the commit (git's index)."""
    import subprocess
    import tempfile

    relative = store.resolve().relative_to(Path(__file__).resolve().parents[2])
    copy = Path(tempfile.mkdtemp()) / "results.sqlite"
    copy.write_bytes(subprocess.run(["git", "show", f":{relative}"], capture_output=True, check=True).stdout)
    return copy


if __name__ == "__main__":
    arguments = [a for a in sys.argv[1:] if not a.startswith("--")]
    source = Path(arguments[0]) if arguments else STORE
    source = _staged(source) if "--staged" in sys.argv else source
    if "--write-docs" in sys.argv:  # after each snapshot of the store, so that the docs follow it
        write_docs(source, Path(__file__).resolve().parents[2] / "docs" / "results.md")
    else:
        print(tables(source))
