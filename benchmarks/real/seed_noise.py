"""How much one fine-tune differs from the next (issue 41): the seed noise select's race judges
its differences by, measured on the committed stores and shipped with the package
(src/transferdet/select/seed_noise.json) with its provenance:

    .venv/bin/python benchmarks/real/seed_noise.py            # print it
    .venv/bin/python benchmarks/real/seed_noise.py --write    # rewrite the shipped file

- ``end``: per architecture, the test AP50 of trial 0 minus trial 1 of the same source on the same
  target, over the shelf store's sources (ImageNet, random and intermediate; 200 iterations of quick);
- ``rungs``: per rung of the shelf races (select_shelf.yaml: 22, 66 and 198 of 200 iterations),
  the validation AP50 of the same candidate in the race of seed 0 minus seed 1 on the same target
  (seed and validation split both change: what a replicate race would see).

Each gives the pairs, the standard deviation of the difference (what a paired comparison of two
single runs has: ``sd_difference``) and its median absolute value.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SHIPPED = ROOT / "src" / "transferdet" / "select" / "seed_noise.json"


def _stats(differences: list[float]) -> dict:
    values = np.array(differences)
    return {"pairs": len(values), "sd_difference": round(float(values.std(ddof=1)), 4),
            "median_abs": round(float(np.median(np.abs(values))), 4)}  # fmt: skip


def _arch(model: str) -> str:
    return model.split("-")[0]  # the stores' names: mnv2-..., lite0-..., lite2-...


def end_noise(store: Path) -> dict:
    db = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    rows = db.execute("SELECT a.dataset, a.model, a.trial, a.value FROM ap a JOIN jobs j ON j.id = a.job_id "
                      "WHERE j.status = 'done' AND a.key = 'AP50'").fetchall()  # fmt: skip
    db.close()
    trials: dict[tuple, dict[int, float]] = defaultdict(dict)
    for dataset, model, trial, value in rows:
        trials[(dataset, model)][trial] = value
    found = defaultdict(list)
    for (_, model), by_trial in sorted(trials.items()):
        if {0, 1} <= set(by_trial):
            found[_arch(model)].append(by_trial[0] - by_trial[1])
    return {arch: _stats(found[arch]) for arch in sorted(found)} | {"all": _stats(sum(found.values(), []))}


def rung_noise(store: Path) -> dict:
    db = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    races = [(d, s, json.loads(summary)) for d, s, summary in db.execute("SELECT dataset, seed, summary FROM races")]
    db.close()
    scores = defaultdict(dict)  # (dataset, model, rung) -> seed -> validation AP50
    for dataset, seed, summary in races:
        for row in summary["candidates"]:
            for rung, value in row["rungs"].items():
                if value is not None:
                    scores[(dataset, row["model"], int(rung))][seed] = value
    found = defaultdict(list)
    for (_, _, rung), by_seed in sorted(scores.items()):
        if {0, 1} <= set(by_seed):
            found[rung].append(by_seed[0] - by_seed[1])
    return {str(rung): _stats(found[rung]) for rung in sorted(found)}


def measured() -> dict:
    return {
        "provenance": {
            "command": "python benchmarks/real/seed_noise.py --write",
            "end": "benchmarks/real/shelf/results.sqlite: test AP50, trial 0 minus trial 1, quick 200 iterations "
            "of 8 images at 256 px, FCOS, 5 targets",
            "rungs": "benchmarks/real/select-shelf/results.sqlite: validation AP50 at each rung, race seed 0 "
            "minus seed 1 (split and seed both change), 5 targets",
        },  # fmt: skip
        "end": end_noise(HERE / "shelf" / "results.sqlite"),
        "rungs": rung_noise(HERE / "select-shelf" / "results.sqlite"),
    }


if __name__ == "__main__":
    text = json.dumps(measured(), indent=1) + "\n"
    if "--write" in sys.argv:
        SHIPPED.write_text(text, encoding="utf-8")
    print(text, end="")
