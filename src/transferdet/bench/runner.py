"""Running a benchmark: plan its jobs, skip the finished ones, run the rest locally or on Ray,
and put every result (or error) into the one store.

Re-running the same command runs only what is missing: jobs that never ran, jobs that failed,
and jobs a killed process left ``running`` (a fine-tuning job resumes from its last checkpoint).
"""

from __future__ import annotations

import contextlib
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transferdet.bench.config import BenchConfig
from transferdet.bench.jobs import plan, run_job
from transferdet.bench.schedule import KINDS, pending
from transferdet.bench.store import STORE_FILE, Job, Store
from transferdet.errors import TransferdetError
from transferdet.provenance import code_version, installed_packages

EXECUTORS = ("local", "ray")
MAX_ATTEMPTS = 3  # runs of one job in one sweep before it is recorded as failed

# (event, job, detail): event is "start", "retry", "lost" (to be run again), "done" or "failed"
JobCallback = Callable[[str, Job, str], None]
RunJob = Callable[[Job, Path], dict]  # runs one job in a benchmark's folder; its result


@dataclass(frozen=True)
class JobKinds:
    """How a benchmark's jobs are planned and run: bench's own kinds (rank, source, train) by default;
    ``transferdet.job_kinds.ALL`` adds select's (a race, a race's rung), which live above bench."""

    plan: Callable[[BenchConfig, str], list[Job]] = plan
    run: RunJob | None = None  # None: bench's own run_job (looked up when a job runs)


BENCH = JobKinds()


@dataclass
class BenchOutcome:
    planned: int
    skipped: int  # already done before this run (or left for another run by ``kinds``)
    ran: int
    failed: list[tuple[Job, str]]
    code_versions: dict[str, dict[str, int]]  # kind -> code version -> done jobs, after this run
    changed_sources: list[str]  # shelf sources rebuilt with other weights than the store's jobs saw


def run_bench(
    config: BenchConfig,
    out: Path,
    executor: str = "local",
    address: str | None = None,
    device: str = "auto",
    on_job: JobCallback | None = None,
    kinds: tuple[str, ...] = KINDS,
    jobs_of: JobKinds = BENCH,
) -> BenchOutcome:
    """Run what is missing of ``config``'s jobs into ``out`` (its store is ``out/results.sqlite``):
    the ranking and fine-tuning jobs of the ``kinds`` asked for, and the shelf sources they need
    (:mod:`~transferdet.bench.schedule`: a source whose run folder is missing is trained again).
    Each job records the code version that ran it; the store keeps each version's packages."""
    if executor not in EXECUTORS:
        raise TransferdetError(f"unknown executor {executor!r} (choose from {', '.join(EXECUTORS)})")
    jobs = jobs_of.plan(config, device)
    with Store(out / STORE_FILE) as store:
        store.add_jobs(jobs)
        store.set_meta("config", config.model_dump(mode="json") | {"models": _entries(config)})
        store.set_meta("job_ids", [j.id for j in jobs])
        store.set_meta(f"environment {code_version()}", installed_packages())
        todo = pending(jobs, store, kinds)
        before = {j.id: store.artifact(j.id) for j in todo if j.kind == "source"}
        threads, run = config.threads_per_job, jobs_of.run
        if executor == "local":  # in schedule order: a source right before the jobs that use it
            failed = run_jobs(todo, out, store, executor, address, threads, on_job, run)
        else:  # all at once: the sources first, then the rest
            sources, rest = [j for j in todo if j.kind == "source"], [j for j in todo if j.kind != "source"]
            failed = run_jobs(sources, out, store, executor, address, threads, on_job, run)
            failed += run_jobs(rest, out, store, executor, address, threads, on_job, run)
        changed = [j.model for j in todo if before.get(j.id) and store.artifact(j.id) != before[j.id]]
        versions = store.code_versions([j.id for j in jobs])
    return BenchOutcome(len(jobs), len(jobs) - len(todo), len(todo), failed, versions, changed)


def run_jobs(
    jobs: list[Job], out: Path, store: Store, executor: str = "local", address: str | None = None,
    threads: int | None = None, on_job: JobCallback | None = None, run: RunJob | None = None,
) -> list[tuple[Job, str]]:  # fmt: skip
    """Run ``jobs`` (registered in ``store``) with ``executor``, each result or error into the
    store, a failure that may not recur run again up to ``MAX_ATTEMPTS`` times; the failed ones.
    Locally in the given order; on Ray all at once."""
    if executor not in EXECUTORS:
        raise TransferdetError(f"unknown executor {executor!r} (choose from {', '.join(EXECUTORS)})")
    if executor == "local":
        return _run_local(jobs, out, store, threads, on_job, run)
    return _run_ray(jobs, out, store, address, threads or 1, on_job, run)


def _entries(config: BenchConfig) -> list[dict[str, Any]]:
    """Every source of some target, as the report reads them (the shelf's included)."""
    return [m.model_dump(mode="json", exclude_none=True) for m in config.all_models()]


def jobs_to_run(
    config: BenchConfig, out: Path, device: str = "auto", kinds: tuple[str, ...] = KINDS, jobs_of: JobKinds = BENCH
) -> int:  # fmt: skip
    """How many of ``config``'s jobs a run would run now (for a progress bar)."""
    jobs = jobs_of.plan(config, device)
    with Store(out / STORE_FILE) as store:
        store.add_jobs(jobs)
        return len(pending(jobs, store, kinds))


def _error_text(error: BaseException) -> str:
    if isinstance(error, TransferdetError):
        return str(error)
    last = traceback.extract_tb(error.__traceback__)[-1:] if error.__traceback__ else []
    where = f" (at {last[0].filename}:{last[0].lineno})" if last else ""
    return f"{type(error).__name__}: {error}{where}"


@dataclass(frozen=True)
class Attempt:
    """How one run of a job went: its result, or its error text and whether running it again may
    help (a crash, a lost worker, an unexpected exception; not a statement about the inputs)."""

    ok: bool
    value: Any
    seconds: float
    retryable: bool = False


def execute(job: Job, out: str, threads: int | None = None, run: RunJob | None = None) -> Attempt:
    """Run one job, never raising. What a worker runs; ``threads`` sets torch's and the BLAS
    libraries' thread counts (a Ray worker's default is one)."""
    import torch
    from threadpoolctl import threadpool_limits

    start = time.perf_counter()
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        # NumPy/SciPy's BLAS too: its thread count can change the last bits of a result
        with threadpool_limits(threads) if threads else contextlib.nullcontext():
            result = (run or run_job)(job, Path(out))
    except Exception as error:  # a failing job is recorded and the rest go on
        # an error about the inputs fails the same way every time: no point in a second attempt
        retryable = not isinstance(error, TransferdetError)
        return Attempt(False, _error_text(error), time.perf_counter() - start, retryable)
    finally:
        torch.set_num_threads(before)
    return Attempt(True, result, time.perf_counter() - start)


class _Sweep:
    """The bookkeeping both executors share: a job's start, its result or error, and whether to
    run it again (up to ``MAX_ATTEMPTS`` in one sweep, for failures that may not recur)."""

    def __init__(self, store: Store, on_job: JobCallback | None) -> None:
        self.store, self.on_job = store, on_job
        self.attempts: Counter[str] = Counter()
        self.failed: list[tuple[Job, str]] = []

    def start(self, job: Job) -> None:
        self.store.started(job.id)
        self.attempts[job.id] += 1
        self._tell("start" if self.attempts[job.id] == 1 else "retry", job, f"attempt {self.attempts[job.id]}")

    def settle(self, job: Job, attempt: Attempt) -> bool:
        """Record ``attempt``; True when the job is to be run again."""
        if attempt.ok:
            self.store.finished(job, attempt.value, attempt.seconds)
            self._tell("done", job, f"{attempt.seconds:.1f} s")
            return False
        tries = self.attempts[job.id]
        if attempt.retryable and tries < MAX_ATTEMPTS:
            self._tell("lost", job, attempt.value)
            return True
        error = f"{attempt.value} (in each of {tries} attempts)" if tries > 1 else attempt.value
        self.store.failed(job.id, error, attempt.seconds)
        self.failed.append((job, error))
        self._tell("failed", job, error)
        return False

    def _tell(self, event: str, job: Job, detail: str) -> None:
        if self.on_job:
            self.on_job(event, job, detail)


def _run_local(
    todo: list[Job], out: Path, store: Store, threads: int | None, on_job: JobCallback | None, run: RunJob | None
) -> list[tuple[Job, str]]:
    sweep = _Sweep(store, on_job)
    for job in todo:
        again = True
        while again:
            sweep.start(job)
            again = sweep.settle(job, execute(job, str(out), threads, *([run] if run else [])))
    return sweep.failed


def _run_ray(
    todo: list[Job], out: Path, store: Store, address: str | None, cpus: int, on_job: JobCallback | None,
    run: RunJob | None,
) -> list[tuple[Job, str]]:  # fmt: skip
    """Each job a Ray task (one GPU per fine-tuning job when the cluster has GPUs); results come
    back to this process, which alone writes the store. ``out`` must be reachable from the
    workers (a shared file system on a multi-node cluster). A job whose worker or node dies is
    submitted again (a fine-tuning job then resumes from its last checkpoint)."""
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
        sweep, pending = _Sweep(store, on_job), {}

        def submit(job: Job) -> None:
            # retries are ours, not Ray's: the store counts every attempt
            options = {"num_cpus": cpus, "num_gpus": 1 if gpus and job.kind == "train" else 0, "max_retries": 0}
            sweep.start(job)
            extra = [run] if run else []  # bench's own kinds: execute's default
            pending[task.options(**options).remote(job, str(out.resolve()), cpus, *extra)] = job

        for job in todo:
            submit(job)
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            job = pending.pop(ready[0])
            try:
                attempt = ray.get(ready[0])
            except ray.exceptions.RayError as error:  # the worker or its node died
                attempt = Attempt(False, f"worker lost: {_error_text(error)}", 0.0, retryable=True)
            if sweep.settle(job, attempt):
                submit(job)
        return sweep.failed
    finally:
        if started_here:
            ray.shutdown()
