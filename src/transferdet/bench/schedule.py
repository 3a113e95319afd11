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

KINDS = ("source", "rank", "train")


def pending(jobs: list[Job], store: Store, kinds: tuple[str, ...] = KINDS) -> list[Job]:
    """The jobs to run now, in the order to run them (:func:`schedule`)."""
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise TransferdetError(f"unknown job kind(s) {', '.join(unknown)} (choose from {', '.join(KINDS)})")
    status = store.status([j.id for j in jobs])
    work = [j for j in jobs if j.kind in kinds and j.kind != "source" and status.get(j.id) != "done"]
    needed = {j.model for j in work}
    sources = [
        j
        for j in jobs
        if j.kind == "source"
        and ((j.model in needed and source_missing(j)) or ("source" in kinds and status.get(j.id) != "done"))
    ]
    return schedule(sources + work)


def schedule(jobs: list[Job]) -> list[Job]:
    """Jobs that need no source training first, then each shelf source to train followed by the
    jobs of that source; otherwise in the given order."""
    training = {j.model for j in jobs if j.kind == "source"}
    ready = [j for j in jobs if j.kind != "source" and j.model not in training]
    ordered = list(ready)
    for source in (j for j in jobs if j.kind == "source"):
        ordered += [source] + [j for j in jobs if j.kind != "source" and j.model == source.model]
    return ordered
