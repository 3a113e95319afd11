"""What a benchmark job is: each kind's definition, a typed model (:class:`RankDefinition`,
:class:`TrainDefinition`, :class:`SourceDefinition`; select's rungs add their own) whose JSON is
stored with the job, and its identity, the hash of that JSON (without the device, and with paths
under the config's folder written relative to it, so that a checkout elsewhere, such as a worktree,
finds the same jobs). Changing the config adds new jobs and leaves finished ones alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_serializer

from transferdet.bench.config import DatasetEntry, config_hash
from transferdet.bench.store import Job
from transferdet.devices import default_device
from transferdet.models.model_card import ModelEntry

# settings added after stores existed: at these values they stay out of a job's identity
LATER_DEFAULTS: dict[str, Any] = {
    "background": None, "precision": "fp32", "card": {}, "plugins": [], "transfer": None, "eval_test_at": [],
    "split_seed": None, "race": "halving", "tolerance": 0.0, "prefer": "card",
}  # fmt: skip
AP_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR100")


class DataRef(BaseModel):
    """A dataset and how to read it (the data options; those at their defaults stay out of the dump, so
    stored jobs keep their identities)."""

    model_config = ConfigDict(extra="forbid")

    path: str
    format: str = "auto"
    split: str | None = None  # the training split (default: the data's own)
    images: str | None = None
    annotations: str | None = None
    csv_columns: dict[str, str] = {}
    class_name: str = "object"
    on_bad_box: str = "drop"

    @model_serializer(mode="wrap")
    def _without_defaults(self, handler: Any) -> dict[str, Any]:
        dumped = handler(self)
        fields = type(self).model_fields
        later = {name: field.default for name, field in fields.items() if name not in ("path", "format")}
        return {k: v for k, v in dumped.items() if not (k in later and later[k] == v)}

    def read_options(self):  # noqa: ANN201 - a ReadOptions
        from transferdet.data.formats.base import ReadOptions

        return ReadOptions(None if self.images is None else Path(self.images),
                           None if self.annotations is None else Path(self.annotations), dict(self.csv_columns),
                           self.class_name)  # fmt: skip


def data_ref(dataset: DatasetEntry) -> DataRef:
    """A config's dataset as a job's definition names it, its data options with it."""
    folders = (("images", dataset.images), ("annotations", dataset.annotations))
    paths = {k: None if v is None else str(v) for k, v in folders}
    return DataRef(path=str(dataset.path), format=dataset.format, split=dataset.split,
                   csv_columns=dict(dataset.csv_columns), class_name=dataset.class_name, on_bad_box=dataset.on_bad_box,
                   **paths)  # fmt: skip


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
        return RankSettings(**self.model_dump(include=shared), device=default_device(self.device),
                            on_bad_box=self.data.on_bad_box)  # fmt: skip


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
    # "whole": a detector source carried over whole; None: its body only, the meaning of every job
    # stored before whole transfer existed (and of a backbone source, where there is nothing more)
    transfer: Literal["whole"] | None = None
    eval_test_at: list[int] = []  # iterations after which the test split is evaluated (a learning curve)
    split_seed: int | None = None  # the seed that draws the splits (None: seed; a race's replicates keep theirs)

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
            train_split=self.data.split,
            options=self.data.read_options(),
            on_bad_box=self.data.on_bad_box,
            transfer=self.transfer or "body",
            eval_test_at=tuple(self.eval_test_at),
            split_seed=self.split_seed,
        )


class SourceDefinition(TrainDefinition):
    """A shelf source: a model fine-tuned on one dataset into the run folder ``out``, which the
    fine-tuning and ranking jobs of other datasets then name as weights (``ARCH@out``)."""

    kind: Literal["source"] = "source"  # type: ignore[assignment]
    out: str


def feature_kind(definition: RankDefinition) -> str:
    """How a ranking job's scores are labelled: its features, with the background RoIs per image
    where it fixes them (``local+bg2``), so that runs with and without background stay apart."""
    return definition.features + (f"+bg{definition.background}" if definition.background is not None else "")


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


def make_job(definition: BaseModel, dataset: str, model: str, trial: int | None, base: Path | None) -> Job:
    content = definition.model_dump(mode="json")
    legacy = _digest(content)  # the identity before paths were made relative (stores made until then)
    digest = legacy if base is None else _digest(_relative(content, str(base).rstrip("/") + "/"))
    rank = definition.kind == "rank"
    layer, features = (",".join(definition.layers), feature_kind(definition)) if rank else (None, None)
    return Job(digest, definition.kind, dataset, model, trial, layer, features, content, legacy)
