"""Every kind of benchmark job, planned and run: bench's own (rank, source, train;
:mod:`~transferdet.bench.jobs`) and select's (a race over one target's sources,
:mod:`~transferdet.select.bench_jobs`; a rung of a race, :mod:`~transferdet.select.rung_jobs`).
It sits above both, so that the layers read one way: select uses bench's runner and store, and
bench never imports select. ``transferdet bench`` runs with :data:`ALL`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transferdet.bench import jobs
from transferdet.bench.config import BenchConfig
from transferdet.bench.runner import JobKinds
from transferdet.bench.store import Job
from transferdet.select.bench_jobs import SelectDefinition, run_select_job, select_jobs
from transferdet.select.rung_jobs import run_rung_job


def plan(config: BenchConfig, device: str) -> list[Job]:
    """bench's plan; a benchmark of select (its ``select`` section) races instead of ranking and
    fine-tuning: the shelf sources it needs, then one race per target, budget and seed."""
    if config.select is None:
        return jobs.plan(config, device)
    return jobs.source_jobs(config, device) + select_jobs(config, device)


def run_job(job: Job, bench_dir: Path) -> dict[str, Any]:
    """Run ``job`` whatever its kind (see :func:`transferdet.bench.jobs.run_job`)."""
    if job.kind == "select":
        jobs.load_plugins(job.definition.get("plugins", []))
        return jobs.stamped(run_select_job(SelectDefinition.model_validate(job.definition), bench_dir))
    if job.kind == "rung":
        return run_rung_job(job, bench_dir)
    return jobs.run_job(job, bench_dir)


ALL = JobKinds(plan, run_job)
