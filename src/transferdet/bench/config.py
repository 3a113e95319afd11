"""A benchmark's configuration (CONFIG.yaml): which datasets, models, protocol, trials, metrics
and layers; validated with pydantic so that a typo is a one-line error, not a half-run sweep."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from transferdet.bench.select_rule import SelectRule
from transferdet.bench.shelf import ShelfRule, ShelfSource, shelf_sources
from transferdet.errors import TransferdetError
from transferdet.hashing import json_digest
from transferdet.models.detectors import DETECTORS
from transferdet.models.model_card import ModelEntry
from transferdet.plugins import is_file, load_plugins
from transferdet.safe_load import load_yaml
from transferdet.train.recipes import RECIPES
from transferdet.transfer.rank import BENCH_SCORES, KNOWN_SCORES


class DatasetEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    path: Path
    format: str = "auto"
    tag: str | None = None  # a short name for the shelf's sources trained on it (default: the name)
    # the data options, as the commands take them (docs: --split, --images, ... --on-bad-box)
    split: str | None = None
    images: Path | None = None
    annotations: Path | None = None
    csv_columns: dict[str, str] = {}
    class_name: str = "object"
    on_bad_box: Literal["drop", "clip", "error", "keep"] = "drop"


class BenchConfig(BaseModel):
    """Every model x dataset is ranked (per feature kind, on every layer) and fine-tuned ``trials`` times.
    A model is a spec or a mapping that also states its card's input normalisation and ImageNet
    top-1 (:class:`~transferdet.models.model_card.ModelEntry`)."""

    model_config = ConfigDict(extra="forbid")

    datasets: list[DatasetEntry] = Field(min_length=1)
    models: list[ModelEntry] = Field(min_length=2)
    detector: str | None = None  # default: the recipe's own, else fcos
    recipe: str = "quick"
    recipe_overrides: dict[str, Any] = Field(default_factory=dict)
    trials: int = Field(1, ge=1)
    seed: int = 0
    metrics: list[str] = Field(default_factory=lambda: list(BENCH_SCORES))
    layers: list[str] = Field(default_factory=lambda: ["c5"])
    features: list[Literal["local", "global"]] = Field(default_factory=lambda: ["local"])
    image_size: int = Field(512, ge=16)
    max_images: int | None = Field(None, ge=1)
    max_boxes_per_class: int | None = Field(None, ge=1)
    # background RoIs per image (default: 2 on single-class data); a list ranks with each, the
    # scores of each kept apart as feature kind "local+bgN" (background sampling on and off)
    background: int | None | list[int | None] = None
    precision: Literal["fp32", "bf16", "fp16", "auto"] = "fp32"  # of the ranking forward passes
    target: Literal["AP", "AP50", "AP75"] = "AP50"
    # torch threads per job (default: torch's own locally, 1 on Ray, where it is also the CPUs each job
    # reserves); fixing it makes results bit-identical across executors. Not part of a job's identity.
    threads_per_job: int | None = Field(None, ge=1)
    # modules or .py files imported before models are built (here and in every Ray worker)
    plugins: list[str] = Field(default_factory=list)
    # intermediate-task sources the bench trains itself, each left out of its own dataset (bench/shelf.py)
    shelf: ShelfRule | None = None
    # races of `transferdet select` over each target's sources, instead of ranking and fine-tuning them
    select: SelectRule | None = None
    # the datasets ranked and fine-tuned on (default: all); the shelf still trains sources on all of its own
    targets: list[str] | None = None
    # iterations after which whole-transfer fine-tunes evaluate the test split too (their learning curve)
    eval_test_at: list[int] = Field(default_factory=list)
    _base: Path | None = PrivateAttr(None)  # the config file's folder (relative paths, job identities)

    @property
    def base(self) -> Path | None:
        return self._base

    def shelf_sources(self) -> list[ShelfSource]:
        if self.shelf is None:
            return []
        tags = {d.name: d.tag or d.name for d in self.datasets}
        return shelf_sources(self.shelf, self.models, tags, self._base or Path.cwd())

    def target_datasets(self) -> list[DatasetEntry]:
        return [d for d in self.datasets if self.targets is None or d.name in self.targets]

    def transfers_whole(self, model: ModelEntry) -> bool:
        """A detector source (a shelf source, a run folder, a detector file) carried over whole: the
        default, unless its entry (or the shelf rule, for its sources) says ``transfer: body``."""
        return model.whole_detector()

    def models_for(self, dataset: str) -> list[ModelEntry]:
        """The sources ranked and fine-tuned on ``dataset``: the listed models, then the shelf's
        (leaving out those trained on ``dataset``)."""
        return self.models + [s.entry for s in self.shelf_sources() if s.trained_on != dataset]

    def all_models(self) -> list[ModelEntry]:
        """Every source of some target: the listed models, then the shelf's."""
        return self.models + [s.entry for s in self.shelf_sources()]

    @field_validator("datasets", mode="before")
    @classmethod
    def _dataset_shorthand(cls, value: Any) -> Any:
        """A bare path names a dataset after its folder."""
        if isinstance(value, list):
            return [{"name": Path(v).name, "path": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator("background")
    @classmethod
    def _backgrounds(cls, value: Any) -> Any:
        counts = value if isinstance(value, list) else [value]
        if any(c is not None and c < 0 for c in counts) or (isinstance(value, list) and not value):
            raise ValueError("background RoIs per image: a count >= 0, null (the default), or a list of them")
        return value

    def backgrounds(self) -> list[int | None]:
        return list(dict.fromkeys(self.background)) if isinstance(self.background, list) else [self.background]

    @model_validator(mode="after")
    def _known_names(self) -> BenchConfig:
        fixed = RECIPES.get(self.recipe, {}).get("detector")
        if self.detector is None:
            self.detector = fixed or "fcos"
        elif fixed is not None and self.detector != fixed:
            raise ValueError(f"recipe {self.recipe} trains {fixed}, not {self.detector}")
        if self.detector not in DETECTORS:
            raise ValueError(f"unknown detector {self.detector!r} (choose from {', '.join(DETECTORS)})")
        if self.recipe not in RECIPES:
            raise ValueError(f"unknown recipe {self.recipe!r} (choose from {', '.join(RECIPES)})")
        unknown = [m for m in self.metrics if m not in KNOWN_SCORES]
        if unknown:
            raise ValueError(f"unknown metric(s) {', '.join(unknown)} (known: {', '.join(KNOWN_SCORES)})")
        names = {d.name for d in self.datasets}
        if not set(self.targets or names) <= names:
            raise ValueError(f"targets: unknown dataset(s) {', '.join(sorted(set(self.targets) - names))}")
        if self.select is not None and not set(self.select.targets or names) <= names:
            raise ValueError(f"select: unknown target(s) {', '.join(sorted(set(self.select.targets) - names))}")
        models = [m.name for m in self.models] + [s.entry.name for s in self.shelf_sources()]
        for kind, names in (("dataset", [d.name for d in self.datasets]), ("model", models)):
            repeated = sorted({n for n in names if names.count(n) > 1})
            if repeated:
                raise ValueError(f"{kind} name(s) used twice: {', '.join(repeated)}")
        return self


def config_hash(definition: dict[str, Any]) -> str:
    """A stable hash of a JSON-able definition (sorted keys)."""
    return json_digest(definition, 16)


def _extended(path: Path, raw: dict[str, Any]) -> dict[str, Any]:
    """``raw`` over the settings of the config it ``extends`` (a file in the same folder, so that
    relative paths mean the same in both; its own ``extends`` is not followed)."""
    name = Path(str(raw.pop("extends")))
    if name.parent != Path("."):
        raise TransferdetError(f"{path}: extends: {name}: name a config in the same folder")
    try:
        base = load_yaml(path.parent / name)
    except TransferdetError as error:
        raise TransferdetError(f"{path}: extends: {error}") from None
    if not isinstance(base, dict) or "extends" in base:
        raise TransferdetError(f"{path}: extends: {name} must be a mapping of settings that extends nothing")
    return base | raw


def load_config(path: Path) -> BenchConfig:
    """Read and validate CONFIG.yaml; relative dataset and checkpoint paths are taken from the
    config file's folder."""
    raw = load_yaml(path)
    if not isinstance(raw, dict):
        raise TransferdetError(f"{path}: expected a mapping of settings at the top level")
    if "extends" in raw:
        raw = _extended(path, raw)
    try:
        config = BenchConfig.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "config"
        raise TransferdetError(f"{path}: {where}: {first['msg']}") from None
    base = path.resolve().parent
    for dataset in config.datasets:
        for name in ("path", "images", "annotations"):
            value = getattr(dataset, name)
            if value is not None and not value.is_absolute():
                setattr(dataset, name, base / value)
    config.models = [model.with_base(base) for model in config.models]
    config._base = base
    if config.select is not None and not config.select.reference.is_absolute():
        config.select.reference = base / config.select.reference
    config.plugins = [str(base / p) if is_file(p) and not Path(p).is_absolute() else p for p in config.plugins]
    load_plugins(config.plugins)  # a broken plug-in fails here, before any job
    return config
