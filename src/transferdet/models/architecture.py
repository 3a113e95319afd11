"""What an adapter makes of an architecture: the :class:`Backbone`, the names and shapes its
checkpoints use, and where its classifier head sits. The adapters (timm, torchvision) build it;
:mod:`~transferdet.models.adapters` picks the adapter."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from transferdet.models.backbone import Backbone


@dataclass
class Architecture:
    """A built backbone and how to give it weights named as in the classification model.

    ``target`` maps the classification model's keys to shapes (what checkpoints are matched
    against); ``backbone_keys`` are the ones the backbone uses; ``assign`` puts matched tensors in;
    ``head`` is the key prefix of the model's classifier when it is one linear layer on average-pooled
    c5 (what LEEP and NCE need), else None; ``convert``, where set, turns a checkpoint's tensors
    (wrapper and key prefix taken off) into the model's names and shapes before matching (a plain
    ViT's layouts: :mod:`~transferdet.models.vit_checkpoints`).
    """

    backbone: Backbone
    target: dict[str, tuple[int, ...]]
    backbone_keys: list[str]
    assign: Callable[[dict[str, torch.Tensor]], None]
    head: str | None = None
    convert: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None
