"""Input normalisation a checkpoint expects (RGB in [0, 1], then ``(x - mean) / std``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def config_normalisation(cfg: Mapping[str, Any] | None) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``(mean, std)`` of a timm ``pretrained_cfg``; ImageNet's where it states none."""
    cfg = cfg or {}
    return tuple(cfg.get("mean", IMAGENET_MEAN)), tuple(cfg.get("std", IMAGENET_STD))
