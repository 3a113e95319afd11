"""A candidate model as a models file or bench config lists it: its spec, and what its model card
states beside the weights.

An entry is a bare spec (``timm:efficientnet_lite0@lite0.pth``) or a mapping::

    - spec: timm:efficientnet_lite0@lite0.pth
      name: lite0-imagenet        # optional; default: the spec
      mean: [0.5, 0.5, 0.5]       # the input normalisation the weights were trained with
      std: [0.5, 0.5, 0.5]
      imagenet_top1: 75.1         # the card's ImageNet-1k top-1 (%), ranked as a static baseline

A stated ``mean``/``std`` comes before a sidecar's or the checkpoint's own
(:mod:`~transferdet.models.normalisation`). The ImageNet top-1 is the static ranker that "How NOT to
benchmark your SITE metric" (ICLR 2026) found hardest for transferability metrics to beat.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from transferdet.errors import TransferdetError
from transferdet.models.normalisation import normalisation_from
from transferdet.models.specs import ModelSpec, parse_spec, split_spec


class ModelEntry(BaseModel):
    """One listed model; ``name`` defaults to the spec."""

    model_config = ConfigDict(extra="forbid")

    name: str = ""
    spec: str
    mean: list[float] | None = None
    std: list[float] | None = None
    imagenet_top1: float | None = Field(None, ge=0, le=100)
    # a detector source (a run folder, a detector file): fine-tuned from it whole (the default) or
    # from its body only; ignored for a backbone's weights
    transfer: Literal["whole", "body"] | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        """A bare spec is an entry with that spec."""
        return {"spec": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _checked(self) -> ModelEntry:
        self.name = self.name or self.spec
        # a stated normalisation must be whole and sensible (the same rule as a sidecar's)
        try:
            normalisation_from(self.model_dump(exclude_none=True, include={"mean", "std"}), self.name)
        except TransferdetError as error:
            raise ValueError(str(error)) from None  # pydantic reports it with where it stands
        return self

    def with_base(self, base: Path) -> ModelEntry:
        """This entry with a relative checkpoint path taken from ``base`` (the listing file's folder)."""
        arch, weights = split_spec(self.spec)
        if weights is None or weights in ("random", "pretrained") or Path(weights).is_absolute():
            return self
        return self.model_copy(update={"spec": f"{arch}@{base / weights}"})

    def model_spec(self) -> ModelSpec:
        """The parsed spec, carrying the stated normalisation and top-1."""
        spec = parse_spec(self.spec)
        mean = tuple(self.mean) if self.mean is not None else None
        std = tuple(self.std) if self.std is not None else None
        return replace(spec, mean=mean, std=std, top1=self.imagenet_top1)

    def whole_detector(self) -> bool:
        """Fine-tuned from as a whole detector: ``transfer: whole`` stated, or, unstated, weights
        that are a detector (a run folder, a torchvision detection builder's file)."""
        if self.transfer is not None:
            return self.transfer == "whole"
        arch, weights = split_spec(self.spec)
        if weights is None or weights in ("random", "pretrained"):
            return False
        from transferdet.models.torchvision_detectors import detection_builders

        builder = arch.startswith("torchvision:") and arch.split(":", 1)[1] in detection_builders()
        return builder or Path(weights).is_dir()

    def card(self) -> dict[str, Any]:
        """What the entry states beyond the spec (JSON-able; empty when nothing)."""
        return self.model_dump(exclude_none=True, include={"mean", "std", "imagenet_top1"})
