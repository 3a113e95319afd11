"""MMDetection checkpoints (``meta`` + ``state_dict``) as whole-detector sources: the body and the
FPN neck, whose layouts are torchvision's under other names.

- ``backbone.*`` is a torchvision-named ResNet (``conv1``, ``bn1``, ``layer1``..): ``backbone.body.*``;
- ``neck.lateral_convs.{i}.conv`` / ``neck.fpn_convs.{i}.conv`` are ``fpn.inner_blocks.{i}.0`` /
  ``fpn.layer_blocks.{i}.0`` for the pyramid's own levels (RetinaNet's extra P6/P7 convolutions,
  ``fpn_convs.3/4``, read C5 or P5 as its config says: not carried).

The RPN and the heads are not carried: their parameterisation (MMDetection's anchor offsets and box
coder with target means and stds, its classification layouts) is not shown equal to torchvision's
here, so the transfer line lists them as left. Class names come from ``meta`` (``CLASSES`` in
MMDetection 2, ``dataset_meta.classes`` in 3).
"""

from __future__ import annotations

import re
from typing import Any

import torch


def is_mmdet_detector(tensors: dict[str, torch.Tensor]) -> bool:
    return "neck.lateral_convs.0.conv.weight" in tensors and any(k.startswith("backbone.layer1.") for k in tensors)


def mmdet_classes(notes: dict[str, Any]) -> list[str] | None:
    meta = notes.get("meta")
    if not isinstance(meta, dict):
        return None
    classes = meta.get("CLASSES") or (meta.get("dataset_meta") or {}).get("classes")
    return [str(c) for c in classes] if isinstance(classes, list | tuple) else None


def from_mmdet(tensors: dict[str, torch.Tensor], levels: int) -> dict[str, torch.Tensor]:
    """The body and the FPN of an MMDetection detector under torchvision's names (``levels``: the
    pyramid's own levels, 4 for R-CNN, 3 for RetinaNet and FCOS)."""
    out = {}
    for name, value in tensors.items():
        if name.startswith("backbone.") and not name.endswith("num_batches_tracked"):
            out["backbone.body." + name[len("backbone.") :]] = value
            continue
        found = re.match(r"^neck\.(lateral|fpn)_convs\.(\d+)\.conv\.(weight|bias)$", name)
        if found is not None and int(found[2]) < levels:
            block = "inner_blocks" if found[1] == "lateral" else "layer_blocks"
            out[f"backbone.fpn.{block}.{found[2]}.0.{found[3]}"] = value
    return out
