"""A benchmark's jobs: what to run (planned from the config) and how to run one.

A ranking job scores one model on one dataset at one layer and feature kind with every metric; a
fine-tuning job trains one model on one dataset with one seed. A job is identified by the hash of
its definition, so changing the config adds new jobs and leaves finished ones alone.
:func:`run_job` is a plain function of the job's definition and the bench folder (no store), so
that any executor (this process, a Ray worker) can run it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from transferdet.bench.config import BenchConfig, config_hash
from transferdet.bench.store import Job
from transferdet.train.engine import CHECKPOINT


def plan(config: BenchConfig, device: str) -> list[Job]:
    """Every ranking job, then every fine-tuning job (models in config order, trials by seed)."""
    jobs = []
    for dataset in config.datasets:
        data = {"path": str(dataset.path), "format": dataset.format}
        for model in config.models:
            for layer in config.layers:
                for features in config.features:
                    definition = {
                        "kind": "rank",
                        "data": data,
                        "spec": model.spec,
                        "layer": layer,
                        "features": features,
                        "metrics": list(config.metrics),
                        "image_size": config.image_size,
                        "max_images": config.max_images,
                        "max_boxes_per_class": config.max_boxes_per_class,
                        "seed": config.seed,
                        "device": device,
                    }
                    jobs.append(_job(definition, dataset.name, model.name, None, layer, features))
    for dataset in config.datasets:
        data = {"path": str(dataset.path), "format": dataset.format}
        for model in config.models:
            for trial in range(config.trials):
                definition = {
                    "kind": "train",
                    "data": data,
                    "spec": model.spec,
                    "detector": config.detector,
                    "recipe": config.recipe,
                    "recipe_overrides": config.recipe_overrides,
                    "seed": config.seed + trial,
                    "device": device,
                }
                jobs.append(_job(definition, dataset.name, model.name, trial, None, None))
    return jobs


def _job(definition: dict, dataset: str, model: str, trial: int | None, layer: str | None, features: str | None) -> Job:
    # the device does not change what a job computes: keep it out of the identity
    identity = {k: v for k, v in definition.items() if k != "device"}
    digest = config_hash(identity)
    return Job(digest, definition["kind"], dataset, model, trial, layer, features, definition)


def run_dir(bench_dir: Path, job: Job) -> Path:
    return bench_dir / "runs" / job.dataset / f"{job.model.replace('/', '_').replace(':', '_')}-{job.id[:8]}"


def resolve_device(device: str) -> str:
    """``auto``: the GPU where this job runs, if it has one (decided on the worker, not the driver)."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def run_job(job: Job, bench_dir: Path) -> dict[str, Any]:
    """Run ``job``; returns ``{"scores": rows}`` or ``{"ap": metrics}``. A fine-tuning job killed
    before has left its last checkpoint in its run folder: it resumes from there (resuming is
    exact, so the result equals an uninterrupted run)."""
    definition = job.definition
    if job.kind == "rank":
        return {"scores": _rank(definition, bench_dir)}
    return {"ap": _train(job, bench_dir)}


def _rank(definition: dict, bench_dir: Path) -> list[dict]:
    from transferdet.transfer.rank import RankSettings, rank

    settings = RankSettings(
        layer=definition["layer"],
        features=definition["features"],
        image_size=definition["image_size"],
        max_images=definition["max_images"],
        max_boxes_per_class=definition["max_boxes_per_class"],
        seed=definition["seed"],
        device=resolve_device(definition["device"]),
    )
    data = definition["data"]
    return rank(
        data["path"],
        [definition["spec"]],
        definition["metrics"],
        settings=settings,
        format=data["format"],
        cache_dir=bench_dir / "feature-cache",
    )


def _train(job: Job, bench_dir: Path) -> dict[str, Any]:
    from transferdet.train.engine import TrainJob, train
    from transferdet.train.recipes import load_recipe

    definition = job.definition
    out = run_dir(bench_dir, job)
    resume = (out / CHECKPOINT).is_file()
    if out.exists() and not resume:
        shutil.rmtree(out)  # killed before its first checkpoint: start clean
    recipe = load_recipe(definition["recipe"], config_file=definition["recipe_overrides"])
    train_job = TrainJob(
        data=Path(definition["data"]["path"]),
        backbone=definition["spec"],
        detector=definition["detector"],
        recipe=recipe,
        out=out,
        seed=definition["seed"],
        device=resolve_device(definition["device"]),
        format=definition["data"]["format"],
    )
    metrics = train(train_job, resume=resume)
    return {k: v for k, v in metrics.items() if k in ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR100")}
