"""Do two of the reused fine-tunes (made at earlier commits) come out the same at this commit?

Runs two finished fine-tuning jobs of the shelf store again, from their definitions, into a scratch
folder, and prints their stored and new AP. Seeded runs on the same machine should agree exactly;
another CPU may move the last digits. Run from the sweep's worktree (shelf.sh's), from its root:
    .venv/bin/python benchmarks/real/reproduce.py STORE_FOLDER [DATASET:MODEL:TRIAL ...]
Writes STORE_FOLDER/reproduce.json for the two default jobs, STORE_FOLDER/reproduce-MODEL-....json
for jobs named on the command line (a shelf source trained again in a later session: do the jobs
that used the first one come out the same from the second?).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from transferdet.bench.config import load_config
from transferdet.bench.jobs import plan, run_job
from transferdet.bench.store import STORE_FILE, Store
from transferdet.provenance import code_version

HERE = Path(__file__).resolve().parent
CHOSEN = [("bccd", "mnv2-imagenet", 0), ("hardhat", "lite2-imagenet", 1)]


def main(store_folder: Path, chosen: list[tuple[str, str, int]]) -> None:
    jobs = {
        (j.dataset, j.model, j.trial): j for j in plan(load_config(HERE / "shelf.yaml"), "cpu") if j.kind == "train"
    }
    with Store(store_folder / STORE_FILE) as store:
        stored = {(r["job_id"], r["key"]): r["value"] for r in store.ap()}
        made_by = {r["id"]: r["code"] or "unrecorded" for r in store.jobs()}
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        for key in chosen:
            job = jobs[key]
            start = time.perf_counter()
            new = run_job(job, Path(scratch))["ap"]
            row = {
                "dataset": key[0],
                "model": key[1],
                "trial": key[2],
                "stored_code": made_by[job.id],
                "code": code_version(),
                "seconds": round(time.perf_counter() - start, 1),
            }
            for name in ("AP50", "AP"):
                row[f"stored_{name}"], row[name] = stored[(job.id, name)], new[name]
            results.append(row)
            print(json.dumps(row))
    name = "reproduce" if chosen == CHOSEN else "-".join(["reproduce"] + [f"{m}-{d}-{t}" for d, m, t in chosen])
    (store_folder / f"{name}.json").write_text(json.dumps(results, indent=1) + "\n")


def _key(text: str) -> tuple[str, str, int]:
    dataset, model, trial = text.split(":")
    return dataset, model, int(trial)


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve(), [_key(a) for a in sys.argv[2:]] or CHOSEN)
