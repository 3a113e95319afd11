"""What an adapter makes of an architecture: the :class:`Backbone`, the names and shapes its
checkpoints use, and where its classifier head sits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from transferdet.models.backbone import Backbone
from transferdet.models.specs import ModelSpec


@dataclass
class Architecture:
    """A built backbone and how to give it weights named as in the classification model.

    ``target`` maps the classification model's keys to shapes (what checkpoints are matched
    against); ``backbone_keys`` are the ones the backbone uses; ``assign`` puts matched tensors in;
    ``head`` is the key prefix of the model's classifier when it is one linear layer on average-pooled
    c5 (what LEEP and NCE need), else None.
    """

    backbone: Backbone
    target: dict[str, tuple[int, ...]]
    backbone_keys: list[str]
    assign: Callable[[dict[str, torch.Tensor]], None]
    head: str | None = None


def build_architecture(spec: ModelSpec) -> Architecture:
    """The architecture ``spec`` names, from the adapter of its library (no checkpoint read)."""
    if spec.library == "timm":
        from transferdet.models.timm_adapter import timm_architecture

        return timm_architecture(spec)
    from transferdet.models.torchvision_adapter import torchvision_architecture

    return torchvision_architecture(spec)
