"""Running a benchmark: plan its jobs, skip the finished ones, run the rest locally or on Ray,
and put every result (or error) into the one store.

Re-running the same command runs only what is missing: jobs that never ran, jobs that failed,
and jobs a killed process left ``running`` (a fine-tuning job resumes from its last checkpoint).
"""

from __future__ import annotations

import contextlib
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transferdet.bench.config import BenchConfig
from transferdet.bench.jobs import plan, run_job
from transferdet.bench.store import STORE_FILE, Job, Store
from transferdet.errors import TransferdetError

EXECUTORS = ("local", "ray")

# (event, job, detail): event is "start", "done" or "failed"
JobCallback = Callable[[str, Job, str], None]


@dataclass
class BenchOutcome:
    planned: int
    skipped: int  # already done before this run
    ran: int
    failed: list[tuple[Job, str]]


def run_bench(
    config: BenchConfig,
    out: Path,
    executor: str = "local",
    address: str | None = None,
    device: str = "auto",
    on_job: JobCallback | None = None,
) -> BenchOutcome:
    """Run what is missing of ``config``'s jobs into ``out`` (its store is ``out/results.sqlite``)."""
    if executor not in EXECUTORS:
        raise TransferdetError(f"unknown executor {executor!r} (choose from {', '.join(EXECUTORS)})")
    jobs = plan(config, device)
    with Store(out / STORE_FILE) as store:
        store.add_jobs(jobs)
        store.set_meta("config", config.model_dump(mode="json"))
        store.set_meta("job_ids", [j.id for j in jobs])
        status = store.status([j.id for j in jobs])
        todo = [j for j in jobs if status.get(j.id) != "done"]
        if executor == "local":
            failed = _run_local(todo, out, store, config.threads_per_job, on_job)
        else:
            failed = _run_ray(todo, out, store, address, config.threads_per_job or 1, on_job)
    return BenchOutcome(len(jobs), len(jobs) - len(todo), len(todo), failed)


def jobs_to_run(config: BenchConfig, out: Path, device: str = "auto") -> int:
    """How many of ``config``'s jobs are not done in ``out``'s store (for a progress bar)."""
    jobs = plan(config, device)
    path = out / STORE_FILE
    if not path.is_file():
        return len(jobs)
    with Store(path) as store:
        status = store.status([j.id for j in jobs])
    return sum(status.get(j.id) != "done" for j in jobs)


def _error_text(error: BaseException) -> str:
    if isinstance(error, TransferdetError):
        return str(error)
    last = traceback.extract_tb(error.__traceback__)[-1:] if error.__traceback__ else []
    where = f" (at {last[0].filename}:{last[0].lineno})" if last else ""
    return f"{type(error).__name__}: {error}{where}"


def execute(job: Job, out: str, threads: int | None = None) -> tuple[bool, Any, float]:
    """Run one job, never raising: ``(ok, result or error text, seconds)``. What a worker runs;
    ``threads`` sets torch's and the BLAS libraries' thread counts (a Ray worker's default is one)."""
    import torch
    from threadpoolctl import threadpool_limits

    start = time.perf_counter()
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        # NumPy/SciPy's BLAS too: its thread count can change the last bits of a result
        with threadpool_limits(threads) if threads else contextlib.nullcontext():
            result = run_job(job, Path(out))
    except Exception as error:  # a failing job is recorded and the rest go on
        return False, _error_text(error), time.perf_counter() - start
    finally:
        torch.set_num_threads(before)
    return True, result, time.perf_counter() - start


def _record(store: Store, job: Job, outcome: tuple[bool, Any, float], on_job: JobCallback | None) -> str | None:
    ok, value, seconds = outcome
    if ok:
        store.finished(job, value, seconds)
        if on_job:
            on_job("done", job, f"{seconds:.1f} s")
        return None
    store.failed(job.id, value, seconds)
    if on_job:
        on_job("failed", job, value)
    return value


def _run_local(
    todo: list[Job], out: Path, store: Store, threads: int | None, on_job: JobCallback | None
) -> list[tuple[Job, str]]:
    failed = []
    for job in todo:
        store.started(job.id)
        if on_job:
            on_job("start", job, "")
        error = _record(store, job, execute(job, str(out), threads), on_job)
        if error is not None:
            failed.append((job, error))
    return failed


def _run_ray(
    todo: list[Job], out: Path, store: Store, address: str | None, cpus: int, on_job: JobCallback | None
) -> list[tuple[Job, str]]:
    """Each job a Ray task (one GPU per fine-tuning job when the cluster has GPUs); results come
    back to this process, which alone writes the store. ``out`` must be reachable from the
    workers (a shared file system on a multi-node cluster)."""
    try:
        import ray
    except ImportError:
        raise TransferdetError("the ray executor needs Ray: pip install 'transferdet[ray]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(include_dashboard=False, log_to_driver=False)
    try:
        gpus = ray.cluster_resources().get("GPU", 0)
        task = ray.remote(execute)
        pending = {}
        for job in todo:
            options = {"num_cpus": cpus, "num_gpus": 1 if gpus and job.kind == "train" else 0, "max_retries": 0}
            pending[task.options(**options).remote(job, str(out.resolve()), cpus)] = job
            store.started(job.id)
            if on_job:
                on_job("start", job, "")
        failed = []
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            job = pending.pop(ready[0])
            try:
                outcome = ray.get(ready[0])
            except Exception as error:  # the worker itself died
                outcome = (False, _error_text(error), 0.0)
            error = _record(store, job, outcome, on_job)
            if error is not None:
                failed.append((job, error))
        return failed
    finally:
        if started_here:
            ray.shutdown()
