"""A rung of select's race: a run of the full schedule stopped at an iteration, evaluated on a
validation split carved from the training images (never the test split), and resumed from there
to exactly the run it would have been."""

from __future__ import annotations

import torch

from transferdet.runs import RunDir
from transferdet.train.engine import train
from transferdet.train.job import TrainJob
from transferdet.train.recipes import load_recipe

SMALL = ["iterations=4", "batch_size=2", "num_workers=0", "min_size=[64]", "max_size=64", "warmup_iterations=1"]


def _job(data, out, **extra) -> TrainJob:
    recipe = load_recipe("quick", [*SMALL, "checkpoint_every=100"])
    return TrainJob(data, "timm:resnet10t@random", "fcos", recipe, out, device="cpu", carve_validation=True, **extra)


def test_a_rung_evaluates_the_validation_split_and_resumes_to_the_uninterrupted_run(synthetic, tmp_path) -> None:
    full = train(_job(synthetic, tmp_path / "full"))
    rung = train(_job(synthetic, tmp_path / "raced", stop_at=2))
    raced = RunDir(tmp_path / "raced")
    assert rung["iteration"] == 2 and rung["split"] != full["split"] and "AP50" in rung
    assert raced.rungs() == [rung] and raced.read_metrics() is None  # unfinished: no test metrics
    assert raced.checkpoint_iteration() == 2
    done = train(_job(synthetic, tmp_path / "raced"), resume=True)
    assert done["AP"] == full["AP"] and done["split"] == full["split"]
    ours, theirs = raced.load_checkpoint()["model"], RunDir(tmp_path / "full").load_checkpoint()["model"]
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
