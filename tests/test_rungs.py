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


def test_a_race_over_real_runs_spends_its_plan_and_answers_again_from_its_folders(synthetic, tmp_path) -> None:
    """A rung at iteration 2 of a 4-iteration schedule over two real runs: the iterations trained
    are the plan's cost, the winner's run is finished (test metrics written), and the same race
    started again trains nothing and picks the same. (Which candidate the race finds, with a screen
    that ranks the best one last, and a kill inside a rung: tests/test_halving.py.)"""
    from transferdet.data.options import DataArgs
    from transferdet.select.halving import Plan
    from transferdet.select.race import run_race
    from transferdet.select.rung_jobs import RaceRuns, race_base, run_folder
    from transferdet.select.runner import store_trainer

    order = ["torchvision:mobilenet_v3_small@random", "timm:resnet10t@random"]
    recipe = load_recipe("quick", [*SMALL, "checkpoint_every=100", "lr=0.002"])
    overrides = recipe.model_dump(mode="json", exclude={"name"})
    base = race_base(synthetic, DataArgs(), "fcos", "quick", overrides, 0, "cpu", [])
    plan = Plan(2, 4, 2, rungs=(2,), survivors=(2,))
    trained, events = [], []
    inner = store_trainer(RaceRuns(tmp_path, base, on_job=lambda event, job, _: events.append(event)), order)

    def counted(candidates: list[str], iteration: int | None) -> dict:
        before = sum(_trained_to(tmp_path, order, c) for c in candidates)
        records = inner(candidates, iteration)
        trained.append(sum(_trained_to(tmp_path, order, c) for c in candidates) - before)
        return records

    result = run_race(plan, order, counted)
    assert sum(trained) == plan.cost == 2 * 2 + 2  # both to iteration 2, the winner on to 4
    assert RunDir(run_folder(tmp_path, order, result.winner)).read_metrics()["iterations"] == 4
    assert events.count("done") == 3  # two rung jobs and the winner's completion, through the store
    again = run_race(plan, order, counted)  # everything answered from the store
    assert again.winner == result.winner and sum(trained) == plan.cost and events.count("start") == 3


def _trained_to(out, order, candidate) -> int:
    from transferdet.select.rung_jobs import run_folder

    run = RunDir(run_folder(out, order, candidate))
    return run.checkpoint_iteration() if run.has_checkpoint() else 0
