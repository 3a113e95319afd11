"""The whole-transfer measurement's tables (issue 43; the pre-registered analysis of README.md),
from the store alone:

    .venv/bin/python benchmarks/real/whole_table.py [STORE]                # print them
    .venv/bin/python benchmarks/real/whole_table.py --staged --write-docs  # docs/results.md's copy of
                                                   # the store snapshot.sh staged (the commit's)

1. paired gains whole - body and whole - ImageNet, AP50 and AP, pooled and per architecture, with
   90% hierarchical bootstrap intervals (targets, sources within target, trials);
2. the within-architecture noise ceiling of whole sources (trial 0 against trial 1);
3. the iteration at which a whole run reaches the body-only run's final AP50;
4. the caveat's measurement: body-only fine-tunes re-run from this sweep's sources (whole_reruns.sh);
5. question 2, once the ranking jobs (shelf_whole_rank.yaml) have run: the rankers' within-architecture
   shares on whole sources against the noise ceiling and the baselines, and the rule's pick
   (bench/whole_rule.py).
"""

from __future__ import annotations

import json
import sqlite3
import sys
from collections import Counter
from pathlib import Path

from transferdet.bench.bootstrap import evidence
from transferdet.bench.whole_gains import hierarchical_mean, noise_ceiling, paired, reach_iteration
from transferdet.bench.whole_rule import Scored, whole_ranking

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


def ranking_rows(store: Path) -> tuple[list[dict], list[dict]]:
    """Question 2's evidence: the scores of the whole-rank jobs (those with the detector's own taps)
    of the intermediate sources, and their whole fine-tunes' AP50 on the four targets."""
    db = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    jobs = db.execute("SELECT id, kind, model, definition FROM jobs WHERE status='done' AND kind IN ('rank', 'train')")
    wanted = set()
    for job_id, kind, model, definition in jobs:
        found = json.loads(definition)
        ours = "cls_tower" in found.get("layers", []) if kind == "rank" else found.get("transfer") == "whole"
        if ours and model.split("-", 1)[1] not in ("imagenet", "random"):
            wanted.add(job_id)
    db.row_factory = sqlite3.Row
    scores = [dict(r) for r in db.execute("SELECT job_id, dataset, model, layer, features, metric, score FROM scores")]
    ap = [dict(r) for r in db.execute("SELECT job_id, dataset, model, key, value FROM ap WHERE key = 'AP50'")]
    db.close()
    keep = [r for r in ap if r["job_id"] in wanted and r["dataset"] in TARGETS]
    return [r for r in scores if r["job_id"] in wanted and r["dataset"] in TARGETS], keep


def _share(row: Scored) -> str:
    gain = "baseline" if row.gain is None else f"{row.gain.value:+.2f} [{row.gain.low:+.2f}, {row.gain.high:+.2f}]"
    return (f"| {row.metric} | {row.layer} | {row.share.value:.2f} [{row.share.low:.2f}, {row.share.high:.2f}] "
            f"| {row.tau:.2f} | {gain} |")  # fmt: skip


def ranking(store: Path) -> list[str]:
    """Question 2's table (every candidate by share, then the baselines), the ceiling and the pick."""
    scores, ap = ranking_rows(store)
    if not scores:
        return ["- Rankers on whole sources (question 2): after the ranking jobs (shelf_whole_rank.yaml); none yet."]
    found = evidence(scores, ap, "AP50")
    result = whole_ranking(found, {m: m.split("-")[0] for by in found.trials.values() for m in by})
    lines = ["| ranker | tap | share of pairs right (bg0, bg2 mean) | mean group τ-b | gain over the best baseline |",
             "| --- | --- | --- | --- | --- |"]  # fmt: skip
    lines += [_share(r) for r in sorted(result.rankers, key=lambda r: -r.share.value)]
    lines += [_share(b) for b in result.baselines]
    ceiling = result.ceiling.get("pair_share")
    shown = f"{ceiling.value:.2f} [{ceiling.low:.2f}, {ceiling.high:.2f}]" if ceiling else "n/a"
    pick = result.winner
    verdict = "qualifies: rank recommends it for whole sources" if result.qualifies else "does not qualify"
    picked = f"- Rule's pick: **{pick.metric} on {pick.layer}** ({verdict})." if pick else "- Rule's pick: none."
    return ["", *lines, "", f"- Noise ceiling over the {result.pairs} pairs: {shown}.", picked]


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


def reruns(folder: Path) -> str:
    """The caveat's line: body-only fine-tunes run again from this sweep's realisation of their source
    (whole_reruns.sh's reproduce-MODEL-DATASET-0.json files), new AP50 minus the stored one."""
    found = [json.loads(path.read_text())[0] for path in sorted(folder.glob("reproduce-*-*-0.json"))]
    if not found:
        return "- Body-only fine-tunes re-run from this sweep's sources (the caveat): none yet (whole_reruns.sh)."
    diffs = [r["AP50"] - r["stored_AP50"] for r in found]
    each = ", ".join(f"{r['model']} on {r['dataset']} {d:+.3f}" for r, d in zip(found, diffs, strict=True))
    return (f"- Body-only fine-tunes re-run from this sweep's sources (the caveat), {len(found)} of 8: new - stored "
            f"AP50 mean {sum(diffs) / len(diffs):+.3f} ({each}).")  # fmt: skip


def tables(store: Path, folder: Path = STORE.parent) -> str:
    """The measurement's tables as markdown, as docs/results.md holds them between its markers
    (``folder``: where whole_reruns.sh wrote its files)."""
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
        reruns(folder),
        *ranking(store),
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
