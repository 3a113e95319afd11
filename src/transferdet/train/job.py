"""A training job: what to train (data, backbone, detector, recipe, seed, device, distillation)
and where (``out``), as the run's manifest records it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from transferdet.data.formats.base import ReadOptions
from transferdet.devices import default_device
from transferdet.distill.distiller import DistillSettings
from transferdet.models.specs import ModelSpec
from transferdet.train.recipes import Recipe


@dataclass
class TrainJob:
    data: Path
    backbone: str | ModelSpec  # a ModelSpec may carry a stated input normalisation
    detector: str
    recipe: Recipe
    out: Path
    seed: int = 0
    device: str = field(default_factory=default_device)
    format: str = "auto"
    train_split: str | None = None
    test_split: str | None = None
    options: ReadOptions = field(default_factory=ReadOptions)
    on_bad_box: str = "drop"  # the dataset's bad boxes: drop, clip, error or keep
    distill: DistillSettings | None = None  # classifier-to-detector distillation from a teacher
    # a rung of select's race: train the full schedule's iterations up to ``stop_at`` only, then
    # evaluate the validation split (never the test split); the run resumes from there
    stop_at: int | None = None
    carve_validation: bool = False  # hold out a validation split from the training images (a race's runs)
    # a detector source (a run folder, a detector file): carried over whole (every tensor whose role
    # and shape fit) or its body only; class rows copied by name (auto), none, or by a map file
    transfer: str = "whole"
    class_map: str = "auto"
    # iterations after which the test split is evaluated too (a learning curve; training unchanged)
    eval_test_at: tuple[int, ...] = ()
    # the seed that draws the splits (None: ``seed``): a race's replicate keeps its race's validation
    # images and varies only initialisation and data order
    split_seed: int | None = None

    @property
    def data_seed(self) -> int:
        return self.seed if self.split_seed is None else self.split_seed

    def record(self, iterations: int) -> dict[str, Any]:
        """The job as the run's manifest keeps it (where a rung stops is not part of the run)."""
        skipped = ("recipe", "options", "distill", "stop_at")
        plain = {k: str(v) for k, v in asdict(self).items() if k not in skipped}
        plain["backbone"] = str(self.backbone)  # a ModelSpec's text (its stated mean/std: the detector record)
        return {**plain, "distill": self.distill_record(), "iterations": iterations}

    def distill_record(self) -> dict[str, Any] | None:
        return None if self.distill is None else {**asdict(self.distill), "teacher": str(self.distill.teacher)}
