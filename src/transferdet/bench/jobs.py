"""A benchmark's jobs: what to run (planned from the config) and how to run one.

A source job trains a shelf source (:mod:`~transferdet.bench.shelf`) into its run folder; a
ranking job scores one model on one dataset at one feature kind with every metric, on every
layer (all from one forward pass); a fine-tuning job trains one model on one dataset with one
seed. Each kind's definition is a typed model (:class:`RankDefinition`, :class:`TrainDefinition`,
:class:`SourceDefinition`) whose JSON is stored with the job, and a job is identified by the hash
of that JSON (without the device, and with paths under the config's folder written relative to it,
so that a checkout elsewhere, such as a worktree, finds the same jobs), so changing the config adds
new jobs and leaves finished ones alone. :func:`run_job` is a
plain function of the job and the bench folder (no store), so that any executor (this process, a
Ray worker) can run it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from transferdet.bench.config import BenchConfig, DatasetEntry, config_hash
from transferdet.bench.store import Job
from transferdet.devices import default_device
from transferdet.models.model_card import ModelEntry
from transferdet.plugins import load_plugins
from transferdet.provenance import code_version
from transferdet.runs import RunDir

# settings added after stores existed: at these values they stay out of a job's identity
LATER_DEFAULTS: dict[str, Any] = {"background": None, "precision": "fp32", "card": {}, "plugins": []}
AP_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR100")


class DataRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str
    format: str = "auto"


class RankDefinition(BaseModel):
    """One model ranked on one dataset at one feature kind, on every layer (one forward pass)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["rank"] = "rank"
    data: DataRef
    spec: str
    layers: list[str]
    features: str
    metrics: list[str]
    image_size: int
    max_images: int | None
    max_boxes_per_class: int | None
    seed: int
    device: str
    background: int | None = None
    precision: str = "fp32"
    card: dict[str, Any] = {}  # what the model's entry states beside the spec (mean, std, imagenet_top1)
    plugins: list[str] = []  # imported before the model is built, wherever the job runs

    def model_spec(self):  # noqa: ANN201 - a ModelSpec
        return ModelEntry(spec=self.spec, **self.card).model_spec()

    def settings(self):  # noqa: ANN201 - a RankSettings
        from dataclasses import fields

        from transferdet.transfer.rank import RankSettings

        shared = {f.name for f in fields(RankSettings)} & set(type(self).model_fields) - {"device"}
        # ``auto``: the device is decided where the job runs
        return RankSettings(**self.model_dump(include=shared), device=default_device(self.device))


class TrainDefinition(BaseModel):
    """One model fine-tuned on one dataset with one seed."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["train"] = "train"
    data: DataRef
    spec: str
    detector: str
    recipe: str
    recipe_overrides: dict[str, Any]
    seed: int
    device: str
    card: dict[str, Any] = {}  # the model's stated input normalisation (its top-1 changes no training)
    plugins: list[str] = []

    def train_job(self, out: Path):  # noqa: ANN201 - a TrainJob
        from transferdet.train.job import TrainJob
        from transferdet.train.recipes import load_recipe

        return TrainJob(
            data=Path(self.data.path),
            backbone=ModelEntry(spec=self.spec, **self.card).model_spec(),
            detector=self.detector,
            recipe=load_recipe(self.recipe, config_file=self.recipe_overrides),
            out=out,
            seed=self.seed,
            device=default_device(self.device),
            format=self.data.format,
        )


class SourceDefinition(TrainDefinition):
    """A shelf source: a model fine-tuned on one dataset into the run folder ``out``, which the
    fine-tuning and ranking jobs of other datasets then name as weights (``ARCH@out``)."""

    kind: Literal["source"] = "source"  # type: ignore[assignment]
    out: str


def _train_definition(config: BenchConfig, dataset: DatasetEntry, model: ModelEntry, seed: int, device: str) -> dict:
    return {
        "data": DataRef(path=str(dataset.path), format=dataset.format),
        "spec": model.spec,
        "detector": config.detector,
        "recipe": config.recipe,
        "recipe_overrides": config.recipe_overrides,
        "seed": seed,
        "device": device,
        "card": {k: v for k, v in model.card().items() if k in ("mean", "std")},
        "plugins": list(config.plugins),
    }


def _source_jobs(config: BenchConfig, device: str) -> list[Job]:
    datasets = {d.name: d for d in config.datasets}
    return [
        _job(
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
                data=DataRef(path=str(dataset.path), format=dataset.format),
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
        for dataset in config.datasets
        for model in config.models_for(dataset.name)
        for features in config.features
        for background in config.backgrounds()
    ]


def feature_kind(definition: RankDefinition) -> str:
    """How a ranking job's scores are labelled: its features, with the background RoIs per image
    where it fixes them (``local+bg2``), so that runs with and without background stay apart."""
    return definition.features + (f"+bg{definition.background}" if definition.background is not None else "")


def plan(config: BenchConfig, device: str) -> list[Job]:
    """Every shelf source job, then every ranking job, then every fine-tuning job (datasets and
    models in config order, trials by seed)."""
    jobs = _source_jobs(config, device)
    jobs += [_job(d, dataset, model, None, config.base) for dataset, model, d in _rank_definitions(config, device)]
    for dataset in config.datasets:
        for model in config.models_for(dataset.name):
            for trial in range(config.trials):
                definition = TrainDefinition(**_train_definition(config, dataset, model, config.seed + trial, device))
                jobs.append(_job(definition, dataset.name, model.name, trial, config.base))
    return jobs


def _relative(value: Any, base: str) -> Any:
    """``value`` with every path under ``base`` (a folder, ending in a separator) made relative to it."""
    if isinstance(value, str):
        return value.replace(base, "")
    if isinstance(value, dict):
        return {k: _relative(v, base) for k, v in value.items()}
    if isinstance(value, list):
        return [_relative(v, base) for v in value]
    return value


def _digest(content: dict[str, Any]) -> str:
    # the device does not change what a job computes: keep it out of the identity (and a setting
    # added later, left at its default, out of it too, so that stores made before it stay valid)
    identity = {k: v for k, v in content.items() if k != "device"}
    return config_hash({k: v for k, v in identity.items() if not (k in LATER_DEFAULTS and LATER_DEFAULTS[k] == v)})


def _job(definition: BaseModel, dataset: str, model: str, trial: int | None, base: Path | None) -> Job:
    content = definition.model_dump(mode="json")
    legacy = _digest(content)  # the identity before paths were made relative (stores made until then)
    digest = legacy if base is None else _digest(_relative(content, str(base).rstrip("/") + "/"))
    rank = definition.kind == "rank"
    layer, features = (",".join(definition.layers), feature_kind(definition)) if rank else (None, None)
    return Job(digest, definition.kind, dataset, model, trial, layer, features, content, legacy)


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
    elif job.kind == "rung":  # a rung of select's race (its run folder is in the definition)
        from transferdet.select.rung_jobs import RungDefinition, run_rung

        result = run_rung(RungDefinition.model_validate(job.definition))
    else:
        result = _train(TrainDefinition.model_validate(job.definition), run_dir(bench_dir, job))
    return result | {"code": code_version()}


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
        settings=definition.settings(),
        format=definition.data.format,
        cache_dir=bench_dir / "feature-cache",
    )


def _train(definition: TrainDefinition, out: Path) -> dict[str, Any]:
    from transferdet.train.engine import train

    run = RunDir(out)
    resumed_from = run.checkpoint_iteration() if run.has_checkpoint() else None
    if out.exists() and resumed_from is None:
        shutil.rmtree(out)  # killed before its first checkpoint: start clean
    metrics = train(definition.train_job(out), resume=resumed_from is not None)
    return {"ap": {k: v for k, v in metrics.items() if k in AP_KEYS}, "resumed_from": resumed_from}
