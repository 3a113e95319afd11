"""A benchmark's jobs: what to run (planned from the config) and how to run one.

A source job trains a shelf source (:mod:`~transferdet.bench.shelf`) into its run folder; a
ranking job scores one model on one dataset at one feature kind with every metric, on every
layer (all from one forward pass); a fine-tuning job trains one model on one dataset with one
seed. select's kinds (a race, a race's rung) are planned and run by :mod:`transferdet.job_kinds`.
What each is and how it is identified: :mod:`~transferdet.bench.definitions`. :func:`run_job` is a
plain function of the job and the bench folder (no store), so that any executor (this process, a
Ray worker) can run it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from transferdet.bench.config import BenchConfig, DatasetEntry
from transferdet.bench.definitions import (
    AP_KEYS,
    RankDefinition,
    SourceDefinition,
    TrainDefinition,
    data_ref,
    make_job,
)
from transferdet.bench.store import Job
from transferdet.errors import TransferdetError
from transferdet.models.model_card import ModelEntry
from transferdet.plugins import load_plugins
from transferdet.provenance import code_version, machine
from transferdet.runs import RunDir


def _train_definition(config: BenchConfig, dataset: DatasetEntry, model: ModelEntry, seed: int, device: str) -> dict:
    whole = config.transfers_whole(model)
    return {
        **({"transfer": "whole", "eval_test_at": list(config.eval_test_at)} if whole else {}),
        "data": data_ref(dataset),
        "spec": model.spec,
        "detector": config.detector,
        "recipe": config.recipe,
        "recipe_overrides": config.recipe_overrides,
        "seed": seed,
        "device": device,
        "card": {k: v for k, v in model.card().items() if k in ("mean", "std")},
        "plugins": list(config.plugins),
    }


def source_jobs(config: BenchConfig, device: str) -> list[Job]:
    datasets = {d.name: d for d in config.datasets}
    return [
        make_job(
            SourceDefinition(
                **_train_definition(config, datasets[s.trained_on], s.start, config.seed, device), out=str(s.folder)
            ),
            s.trained_on,
            s.entry.name,
            None,
            config.base,
        )
        for s in config.shelf_sources()
    ]


def _rank_definitions(config: BenchConfig, device: str) -> list[tuple[str, str, RankDefinition]]:
    """(dataset name, model name, definition) of every ranking job."""
    return [
        (
            dataset.name,
            model.name,
            RankDefinition(
                data=data_ref(dataset),
                spec=model.spec,
                layers=list(config.layers),
                features=features,
                metrics=list(config.metrics),
                image_size=config.image_size,
                max_images=config.max_images,
                max_boxes_per_class=config.max_boxes_per_class,
                seed=config.seed,
                device=device,
                background=background,
                precision=config.precision,
                card=model.card(),
                plugins=list(config.plugins),
            ),
        )
        for dataset in config.target_datasets()
        for model in config.models_for(dataset.name)
        for features in config.features
        for background in config.backgrounds()
    ]


def plan(config: BenchConfig, device: str) -> list[Job]:
    """Every shelf source job, then every ranking job, then every fine-tuning job (datasets and
    models in config order, trials by seed); a benchmark of select plans its races instead of the
    ranking and fine-tuning jobs."""
    jobs = source_jobs(config, device)
    if config.select is not None:
        raise TransferdetError("a benchmark of select plans its races through transferdet.job_kinds (bench's CLI)")
    jobs += [make_job(d, dataset, model, None, config.base) for dataset, model, d in _rank_definitions(config, device)]
    for dataset in config.target_datasets():
        for model in config.models_for(dataset.name):
            for trial in range(config.trials):
                definition = TrainDefinition(**_train_definition(config, dataset, model, config.seed + trial, device))
                jobs.append(make_job(definition, dataset.name, model.name, trial, config.base))
    return jobs


def run_dir(bench_dir: Path, job: Job) -> Path:
    return bench_dir / "runs" / job.dataset / f"{job.model.replace('/', '_').replace(':', '_')}-{job.id[:8]}"


def run_job(job: Job, bench_dir: Path) -> dict[str, Any]:
    """Run ``job``; returns ``{"scores": rows}`` or ``{"ap": metrics, "resumed_from": iteration}``.
    A fine-tuning job killed before has left its last checkpoint in its run folder: it resumes
    from there (resuming is exact, so the result equals an uninterrupted run)."""
    load_plugins(job.definition.get("plugins", []))  # in this process (a Ray worker's too), once
    if job.kind == "rank":
        result = {"scores": _rank(RankDefinition.model_validate(job.definition), bench_dir)}
    elif job.kind == "source":
        source = SourceDefinition.model_validate(job.definition)
        # its own AP stays in its run folder: the store's AP rows are of fine-tunes on targets
        resumed_from = _train(source, Path(source.out))["resumed_from"]
        result = {"artifact": RunDir(Path(source.out)).checkpoint_digest(), "resumed_from": resumed_from}
    elif job.kind == "train":
        result = _train(TrainDefinition.model_validate(job.definition), run_dir(bench_dir, job))
    else:
        raise TransferdetError(f"a {job.kind} job runs through transferdet.job_kinds (transferdet bench)")
    return stamped(result)


def stamped(result: dict[str, Any]) -> dict[str, Any]:
    """A job's result with the code version and the machine that produced it."""
    return result | {"code": code_version(), "host": machine()}


def source_missing(job: Job) -> bool:
    """A source job whose run folder holds no finished run (a fresh checkout: run folders are not
    committed): it runs again, whatever the store says."""
    return job.kind == "source" and RunDir(Path(job.definition["out"])).read_metrics() is None


def _rank(definition: RankDefinition, bench_dir: Path) -> list[dict]:
    from transferdet.transfer.rank import rank

    return rank(
        definition.data.path,
        [definition.model_spec()],
        definition.metrics,
        split=definition.data.split,
        settings=definition.settings(),
        format=definition.data.format,
        options=definition.data.read_options(),
        cache_dir=bench_dir / "feature-cache",
    )


def _train(definition: TrainDefinition, out: Path) -> dict[str, Any]:
    from transferdet.train.engine import train

    run = RunDir(out)
    resumed_from = run.checkpoint_iteration() if run.has_checkpoint() else None
    if out.exists() and resumed_from is None:
        shutil.rmtree(out)  # killed before its first checkpoint: start clean
    metrics = train(definition.train_job(out), resume=resumed_from is not None)
    evaluations = [row for row in run.log_rows() if "test_eval" in row]  # the learning curve, if asked for
    curve = {f"{k}@{row['iteration']}": v for row in evaluations for k, v in row["test_eval"].items()}
    return {"ap": {k: v for k, v in metrics.items() if k in AP_KEYS} | curve, "resumed_from": resumed_from}
