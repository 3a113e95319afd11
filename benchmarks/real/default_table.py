"""rank's default across scopes (issue 41), the pre-registered rule of README.md applied to the
complete shelf store:

    .venv/bin/python benchmarks/real/default_table.py [benchmarks/real/shelf]

Prints each candidate's share of pretrained-vs-random and across-architecture pairs with 90%
intervals, the baselines beside them, and the rule's pick (bench/default_rule.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

from transferdet.bench.bootstrap import evidence
from transferdet.bench.default_rule import (
    SCOPES,
    Ranker,
    baselines,
    counted_pairs,
    on_replicates,
    paired_gain,
    rankers,
    rule_winner,
    scope_pairs,
)
from transferdet.bench.report_data import architectures, static_once
from transferdet.bench.store import STORE_FILE, Store
from transferdet.models.specs import split_spec
from transferdet.transfer.recommended import LAYER, METRIC

SHELF = Path(__file__).resolve().parent / "shelf"
PREVIOUS = ("transrate", "c5")  # rank's default before the shelf rule (chosen on bench.yaml's store, issue 16)


def inputs(folder: Path):  # noqa: ANN201 - (Evidence, Pairs)
    """The store's evidence over every source, and the two scopes' pairs."""
    import shutil
    import tempfile

    copy = Path(tempfile.mkdtemp()) / STORE_FILE  # opening a store may migrate it: the committed file stays
    shutil.copy(folder / STORE_FILE, copy)
    with Store(copy) as store:
        config = store.meta("config") or {}
        job_ids = store.meta("job_ids")
        scores, ap = static_once(store.scores(job_ids)), store.ap(job_ids)
    arch_of = architectures(config)
    random = {m["name"] for m in config["models"] if split_spec(str(m["spec"]))[1] in (None, "random")}
    return evidence(scores, ap, config.get("target", "AP50"), set(arch_of)), scope_pairs(arch_of, random)


def _cell(share) -> str:  # noqa: ANN001 - an Interval
    return f"{share.value:.3f} [{share.low:.3f}, {share.high:.3f}]"


def _row(ranker: Ranker, qualifies: str) -> str:
    return f"| {ranker.metric} | {ranker.layer} | {' | '.join(_cell(ranker.shares[s]) for s in SCOPES)} | {qualifies} |"


def tables(folder: Path) -> str:
    found, pairs = inputs(folder)
    shares = on_replicates(found, pairs)
    candidates = rankers(shares)
    winner, qualified = rule_winner(candidates)
    ordered = sorted(candidates, key=lambda c: -c.worse.value)
    counts = counted_pairs(found, pairs)
    head = [f"| ranker | tap | {' | '.join(f'{s} ({counts[s]} pairs)' for s in SCOPES)} | qualifies |",
            "|---|---|---|---|---|"]  # fmt: skip
    lines = head + [_row(c, "yes" if c.qualifies else "no") for c in ordered]
    lines += [_row(b, "baseline") for b in baselines(shares)]
    verdict = "qualified" if qualified else "no candidate qualified: the best by the same criterion"
    pick = (winner.metric, winner.layer)
    header = f"| pick's paired gain in share against | {' | '.join(SCOPES)} | worse scope |"
    lines += ["", f"Rule's pick: **{pick[0]} on {pick[1]}** ({verdict}).", "", header, "|---|---|---|---|"]
    for name, other in (("the current default", (METRIC, LAYER)), ("the previous default", PREVIOUS)):
        gains = paired_gain(shares, pick, other)
        cells = " | ".join(_signed(gains[k]) for k in (*SCOPES, "worse"))
        lines.append(f"| {name}, {other[0]} on {other[1]} | {cells} |")
    return "\n".join(lines)


def _signed(gain) -> str:  # noqa: ANN001 - an Interval
    return f"{gain.value:+.3f} [{gain.low:+.3f}, {gain.high:+.3f}]"


if __name__ == "__main__":
    print(tables(Path(sys.argv[1]) if len(sys.argv) > 1 else SHELF))
