"""Input normalisation a checkpoint expects (RGB in [0, 1], then ``(x - mean) / std``).

It is part of a checkpoint, as its model card states: ImageNet's mean/std for torchvision and most
timm weights, ``[-1, 1]`` (mean = std = 0.5) for TensorFlow ports such as EfficientNet-Lite. Fed
the wrong one, the weights still load but see shifted inputs. Where a checkpoint states it, it is
taken from, in this order:

1. a sidecar file next to the checkpoint, ``<checkpoint file>.json``, with ``"mean"`` and ``"std"``
   (three numbers each; other keys, such as a model card's, are ignored);
2. a dict checkpoint's own top-level ``"mean"`` and ``"std"`` entries;

and otherwise from the architecture's timm ``pretrained_cfg``, else ImageNet's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transferdet.errors import TransferdetError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Normalisation:
    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: str  # where it was stated, for `zoo inspect`


def config_normalisation(cfg: Mapping[str, Any] | None) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``(mean, std)`` of a timm ``pretrained_cfg``; ImageNet's where it states none."""
    cfg = cfg or {}
    return tuple(cfg.get("mean", IMAGENET_MEAN)), tuple(cfg.get("std", IMAGENET_STD))


def sidecar_path(checkpoint: Path) -> Path:
    return checkpoint.with_name(checkpoint.name + ".json")


def _triple(value: Any, what: str, where: str, positive: bool) -> tuple[float, ...]:
    try:
        numbers = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        numbers = ()
    if len(numbers) != 3 or (positive and min(numbers) <= 0):
        kind = "positive numbers" if positive else "numbers"
        raise TransferdetError(f"{where}: {what} must be 3 {kind} (R, G, B), got {value!r}")
    return numbers


def normalisation_from(entries: Mapping[str, Any], where: str) -> Normalisation | None:
    """``mean``/``std`` from a mapping (a sidecar's content, a checkpoint's entries); None when it
    states neither, an error naming ``where`` when it states one badly or only one."""
    stated = [key for key in ("mean", "std") if key in entries]
    if not stated:
        return None
    if len(stated) == 1:
        raise TransferdetError(f"{where}: states {stated[0]} but not {'std' if stated[0] == 'mean' else 'mean'}")
    return Normalisation(
        _triple(entries["mean"], "mean", where, positive=False),
        _triple(entries["std"], "std", where, positive=True),
        where,
    )


def stated_normalisation(checkpoint: Path | None, entries: Mapping[str, Any] | None = None) -> Normalisation | None:
    """What the checkpoint states (its sidecar first, then its own ``entries``), or None."""
    if checkpoint is None:
        return None
    sidecar = sidecar_path(checkpoint)
    if sidecar.is_file():
        try:
            content = json.loads(sidecar.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise TransferdetError(f"{sidecar}: not JSON ({error})") from None
        if not isinstance(content, Mapping):
            raise TransferdetError(f"{sidecar}: expected an object with mean and std")
        found = normalisation_from(content, str(sidecar))
        if found is not None:
            return found
    return normalisation_from(entries, f"{checkpoint} (its own entries)") if entries else None
