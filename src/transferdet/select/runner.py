"""The race's local runs: each candidate one run folder under the race's, trained rung by rung with
:class:`~transferdet.train.job.TrainJob`'s ``stop_at`` and resumed, a validation split carved from
its training images under the race's seed (the same for every candidate)."""

from __future__ import annotations

import re
from pathlib import Path

from transferdet.runs import RunDir
from transferdet.select.race import TrainTo
from transferdet.train.engine import train
from transferdet.train.job import TrainJob
from transferdet.train.recipes import Recipe


def run_folder(out: Path, order: list[str], candidate: str) -> Path:
    """``NN-<spec as a file name>``: NN is the candidate's place in the screen's order."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", candidate).strip("_")[:80]
    return out / f"{order.index(candidate):02d}-{slug}"


def local_train_to(
    data: Path, order: list[str], recipe: Recipe, detector: str, out: Path, seed: int = 0, device: str = "cpu"
) -> TrainTo:
    """Train a candidate to a rung (or to the end for None) in its run folder: a rung already
    evaluated answers from the folder; a run checkpointed at the rung only evaluates; the rest
    resume from their checkpoint."""

    def train_to(candidate: str, iteration: int | None) -> dict:
        run = RunDir(run_folder(out, order, candidate))
        if iteration is not None:
            reached = {r["iteration"]: r for r in run.rungs()}
            if iteration in reached:
                return reached[iteration]
        elif run.read_metrics() is not None:
            return run.read_metrics()
        job = TrainJob(data, candidate, detector, recipe, run.path, seed=seed, device=device, stop_at=iteration,
                       carve_validation=True)  # fmt: skip
        return train(job, resume=run.has_checkpoint())

    return train_to
