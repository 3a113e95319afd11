"""Detector sources: a whole trained detector named as a model spec's weights, read as data.

Today: a ``transferdet train`` run folder (``ARCH@RUN_DIR``): its detector record (kind and
structure), its classes, the input normalisation it trained with, and its weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from transferdet.models.specs import ModelSpec, require_trained_arch


@dataclass
class DetectorSource:
    """A whole detector to start from: its structure, class names (None when unknown) and weights."""

    origin: str
    record: dict[str, Any]  # a DetectorConfig record (kind, fpn_channels, anchors, ...)
    classes: list[str] | None
    state: dict[str, torch.Tensor]

    @property
    def kind(self) -> str:
        return self.record["kind"]


def read_detector_source(spec: ModelSpec) -> DetectorSource | None:
    """The whole detector ``spec``'s weights name, or None where they are a backbone's."""
    if not spec.is_detector_run:
        return None
    from transferdet.runs import RunDir

    run = RunDir(spec.checkpoint)
    require_trained_arch(run, spec)
    record = run.manifest()["detector"]
    state = run.load_checkpoint()["model"]
    return DetectorSource(str(run.path), record, list(record.get("classes", [])) or None, state)


# what a whole transfer takes from the source's record: the detector's structure (the recipe keeps
# the schedule, sizes, norm policy and frozen stages)
STRUCTURE = ("kind", "fpn_channels", "fpn_norm", "anchors", "ssd_scales", "extra")
