"""Where a race's runs train: each rung's jobs (:mod:`~transferdet.select.rung_jobs`) go through
the bench runner, locally or on Ray (``address``), with its retries, and their results and statuses
live in the race's store, ``results.sqlite`` in the race's folder. A rung already done in the store
is not run again, so the same race started again after a kill trains only what is missing."""

from __future__ import annotations

from transferdet.bench.runner import run_jobs
from transferdet.bench.store import STORE_FILE, Job, Store
from transferdet.select.race import TrainRung
from transferdet.select.rung_jobs import RaceRuns, run_rung_job


def store_trainer(runs: RaceRuns, order: list[str]) -> TrainRung:
    """The race's ``train_rung``: every candidate asked for brought to the rung through the store."""

    def train_rung(candidates: list[str], iteration: int | None) -> dict[str, dict]:
        jobs = [runs.job(order, c, iteration) for c in candidates]
        with Store(runs.out / STORE_FILE) as store:
            store.add_jobs(jobs)
            status = store.status([j.id for j in jobs])
            todo = [j for j in jobs if status.get(j.id) != "done"]
            run_jobs(todo, runs.out, store, runs.executor, runs.address, runs.threads, runs.on_job, run_rung_job)
            return _records(store, jobs)

    return train_rung


def _records(store: Store, jobs: list[Job]) -> dict[str, dict]:
    """Each job's AP values by key (and its iteration), or its error."""
    values: dict[str, dict] = {}
    for row in store.ap([j.id for j in jobs]):
        values.setdefault(row["job_id"], {})[row["key"]] = row["value"]
    rows = {row["id"]: row for row in store.jobs([j.id for j in jobs])}
    records = {}
    for job in jobs:
        if rows[job.id]["status"] == "done":
            records[job.model] = values.get(job.id, {}) | {"iteration": job.definition["stop_at"]}
        else:
            records[job.model] = {"error": rows[job.id]["error"] or rows[job.id]["status"]}
    return records
