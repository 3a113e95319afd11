"""Which of a benchmark's jobs run now, and in what order.

A job runs when it is not done, of the kinds asked for. A shelf source (:mod:`~transferdet.bench.shelf`)
is trained when it never was, or when its run folder is missing (a fresh checkout: run folders
are not committed) and a job to run needs it. The order keeps that rebuilding small across
sessions: first the jobs whose weights are at hand, then one shelf source at a time, its training
right before the jobs that use it, so that a sweep stopped at any point leaves few sources that a
later session must train again.
"""

from __future__ import annotations

from transferdet.bench.jobs import source_missing
from transferdet.bench.store import Job, Store
from transferdet.errors import TransferdetError

KINDS = ("source", "rank", "train", "select")


def pending(jobs: list[Job], store: Store, kinds: tuple[str, ...] = KINDS) -> list[Job]:
    """The jobs to run now, in the order to run them (:func:`schedule`)."""
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise TransferdetError(f"unknown job kind(s) {', '.join(unknown)} (choose from {', '.join(KINDS)})")
    status = store.status([j.id for j in jobs])
    work = [j for j in jobs if j.kind in kinds and j.kind != "source" and status.get(j.id) != "done"]
    needed = {j.model for j in work} | {
        c["name"] for j in work if j.kind == "select" for c in j.definition["candidates"]
    }
    sources = [
        j
        for j in jobs
        if j.kind == "source"
        and ((j.model in needed and source_missing(j)) or ("source" in kinds and status.get(j.id) != "done"))
    ]
    return schedule(sources + work)


def schedule(jobs: list[Job]) -> list[Job]:
    """Jobs that need no source training first, then each shelf source to train followed by the
    jobs that wait for it last (a race waits for all its sources); otherwise in the given order."""
    sources = [j for j in jobs if j.kind == "source"]
    place = {s.model: i for i, s in enumerate(sources)}
    after: list[list[Job]] = [[] for _ in sources]  # the jobs to run once source i is trained
    ordered = []
    for job in (j for j in jobs if j.kind != "source"):
        waits = [place[m] for m in _uses(job) if m in place]
        (after[max(waits)] if waits else ordered).append(job)
    for source, following in zip(sources, after, strict=True):
        ordered += [source, *following]
    return ordered


def _uses(job: Job) -> set[str]:
    """The sources a job builds: its model, or a race's candidates."""
    return {c["name"] for c in job.definition["candidates"]} if job.kind == "select" else {job.model}
