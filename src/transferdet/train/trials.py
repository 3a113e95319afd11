"""Several seeded trials of one training job (seeds S, S+1, ...), summarised as mean ± std, as
the transfer protocols report them (e.g. MoCo's 5 trials on VOC)."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from transferdet.errors import TransferdetError
from transferdet.runs import RunDir
from transferdet.train.engine import train
from transferdet.train.job import TrainJob

SUMMARY_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl")
# (trial, iteration, total iterations, scalars)
TrialCallback = Callable[[int, int, int, dict[str, float]], None]


def mean_std(values: list[float | None]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation of the values present (0 for one value)."""
    present = [v for v in values if v is not None]
    if not present:
        return None, None
    return statistics.fmean(present), (statistics.stdev(present) if len(present) > 1 else 0.0)


def summarise(results: list[dict[str, Any]]) -> dict[str, float | None]:
    """``KEY`` (mean) and ``KEY_std`` for each of :data:`SUMMARY_KEYS`."""
    summary: dict[str, float | None] = {}
    for key in SUMMARY_KEYS:
        summary[key], summary[f"{key}_std"] = mean_std([r.get(key) for r in results])
    return summary


def train_trials(
    job: TrainJob, trials: int = 1, resume: bool = False, on_iteration: TrialCallback | None = None, main: bool = True
) -> dict[str, Any]:
    """Train ``job`` ``trials`` times; one trial runs in ``job.out`` itself, several in
    ``job.out/trial-K`` with their summary written beside them (by the main process). Returns the
    one trial's metrics, or the summary."""
    if trials < 1:
        raise TransferdetError("--trials must be at least 1")
    root, results = RunDir(job.out), []
    for trial in range(trials):
        folder = root.path if trials == 1 else root.trial(trial).path
        callback = None if on_iteration is None else (lambda i, n, s, t=trial: on_iteration(t, i, n, s))
        results.append(train(replace(job, out=folder, seed=job.seed + trial), resume, callback))
    if trials == 1:
        return results[0]
    summary = summarise(results)
    if main:
        root.write_trials([job.seed + t for t in range(trials)], results, summary)
    return summary
