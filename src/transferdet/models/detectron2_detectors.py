"""detectron2's whole detectors (R50-FPN Faster / Mask R-CNN, RetinaNet) to and from torchvision's
layout, which transferdet's detectors share.

- the body: ``backbone.bottom_up.*`` through the ResNet names of
  :mod:`~transferdet.models.detectron2_names` (MSRA's BGR 0-255 first conv rewritten for RGB);
- the FPN: ``fpn_lateral{k}`` / ``fpn_output{k}`` are ``fpn.inner_blocks`` / ``fpn.layer_blocks``
  (from level 2 for R-CNN, 3 for RetinaNet), ``top_block.p6/p7`` are ``fpn.extra_blocks.p6/p7``;
- the RPN: ``proposal_generator.rpn_head.{conv, objectness_logits, anchor_deltas}`` are
  ``rpn.head.{conv.0.0, cls_logits, bbox_pred}``; both order a location's anchors by aspect ratio
  (one size per level) and decode with weights (1, 1, 1, 1);
- the box head: ``fc1``/``fc2`` are ``fc6``/``fc7``; the box predictor's background row is last in
  detectron2 and first in torchvision, and detectron2 regresses no box for it (4C rows against
  torchvision's 4(C+1), whose background rows are zeros here); both decode with (10, 10, 5, 5);
- the mask head: ``mask_fcn1..4``, ``deconv``, ``predictor`` (C maps) are ``mask_head.0..3.0``,
  ``mask_predictor.conv5_mask``, ``mask_predictor.mask_fcn_logits`` (C+1, background first);
- RetinaNet's head: ``cls_subnet.{0,2,4,6}`` / ``bbox_subnet.*`` are the towers' ``conv.{0..3}.0``;
  a location's 9 anchors are ordered size-major in detectron2 and ratio-major in torchvision, so
  ``cls_score`` / ``bbox_pred`` channels are permuted (:func:`anchor_permutation`); both decode with
  weights (1, 1, 1, 1).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import torch

from transferdet.models.detectron2_names import detectron2_to_resnet, resnet_to_detectron2

SIZES_PER_LEVEL, RATIOS = 3, 3  # RetinaNet: 3 octave scales x 3 aspect ratios per location
_FIXED = {  # detectron2 name -> torchvision name, besides the body, the FPN and the towers
    "proposal_generator.rpn_head.conv": "rpn.head.conv.0.0",
    "proposal_generator.rpn_head.objectness_logits": "rpn.head.cls_logits",
    "proposal_generator.rpn_head.anchor_deltas": "rpn.head.bbox_pred",
    "roi_heads.box_head.fc1": "roi_heads.box_head.fc6",
    "roi_heads.box_head.fc2": "roi_heads.box_head.fc7",
    "roi_heads.box_predictor.cls_score": "roi_heads.box_predictor.cls_score",
    "roi_heads.box_predictor.bbox_pred": "roi_heads.box_predictor.bbox_pred",
    "roi_heads.mask_head.deconv": "roi_heads.mask_predictor.conv5_mask",
    "roi_heads.mask_head.predictor": "roi_heads.mask_predictor.mask_fcn_logits",
    "backbone.top_block.p6": "backbone.fpn.extra_blocks.p6",
    "backbone.top_block.p7": "backbone.fpn.extra_blocks.p7",
    "head.cls_score": "head.classification_head.cls_logits",
    "head.bbox_pred": "head.regression_head.bbox_reg",
}


def is_detectron2_detector(tensors: dict[str, torch.Tensor]) -> bool:
    return any(k.startswith("backbone.bottom_up.") for k in tensors) and any(
        k.startswith(("proposal_generator.", "roi_heads.", "head.")) for k in tensors
    )


def anchor_permutation() -> list[int]:
    """For each torchvision anchor index (ratio-major: r * S + s), detectron2's (size-major: s * R + r)."""
    return [s * RATIOS + r for r in range(RATIOS) for s in range(SIZES_PER_LEVEL)]


def _rows(value: torch.Tensor, order: list[int], per_anchor: int) -> torch.Tensor:
    """``value``'s first dimension (anchors x per_anchor) with anchors taken in ``order``."""
    blocks = value.reshape(len(order), per_anchor, *value.shape[1:])
    return blocks[order].reshape(value.shape)


def _fpn_name(name: str, first: int, to_torchvision: bool) -> str | None:
    if to_torchvision:
        found = re.match(r"^backbone\.fpn_(lateral|output)(\d)\.(weight|bias)$", name)
        if found is None:
            return None
        block = "inner_blocks" if found[1] == "lateral" else "layer_blocks"
        return f"backbone.fpn.{block}.{int(found[2]) - first}.0.{found[3]}"
    found = re.match(r"^backbone\.fpn\.(inner|layer)_blocks\.(\d)\.0\.(weight|bias)$", name)
    if found is None:
        return None
    return f"backbone.fpn_{'lateral' if found[1] == 'inner' else 'output'}{int(found[2]) + first}.{found[3]}"


def _tower_name(name: str, to_torchvision: bool) -> str | None:
    pairs = (
        ("head.cls_subnet.", "head.classification_head.conv."),
        ("head.bbox_subnet.", "head.regression_head.conv."),
        ("roi_heads.mask_head.mask_fcn", "roi_heads.mask_head."),
    )
    for d2, tv in pairs:
        if to_torchvision and name.startswith(d2):
            index, leaf = name[len(d2) :].split(".", 1)
            step = int(index) // 2 if "subnet" in d2 else int(index) - 1
            return f"{tv}{step}.0.{leaf}"
        if not to_torchvision and name.startswith(tv):
            index, _, leaf = name[len(tv) :].split(".", 2)
            step = int(index) * 2 if "subnet" in d2 else int(index) + 1
            return f"{d2}{step}.{leaf}"
    return None


def _rename(name: str, kind: str, to_torchvision: bool) -> str | None:
    first = 3 if kind == "retinanet" else 2
    body = ("backbone.bottom_up.", "backbone.body.") if to_torchvision else ("backbone.body.", "backbone.bottom_up.")
    if name.startswith(body[0]):
        convert = detectron2_to_resnet if to_torchvision else resnet_to_detectron2
        inner = convert(name[len(body[0]) :])
        return None if inner is None else body[1] + inner
    found = _fpn_name(name, first, to_torchvision) or _tower_name(name, to_torchvision)
    if found is not None:
        return found
    module, _, leaf = name.rpartition(".")
    table = _FIXED if to_torchvision else {tv: d2 for d2, tv in _FIXED.items()}
    return f"{table[module]}.{leaf}" if module in table else None


def _class_rows(name: str, value: torch.Tensor, to_torchvision: bool) -> torch.Tensor:
    """The background row moved (last in detectron2, first in torchvision); detectron2 has no box
    regression (nor mask) for the background: zeros in torchvision's layout, dropped back."""
    if name.startswith("roi_heads.box_predictor.cls_score."):
        return torch.roll(value, 1 if to_torchvision else -1, dims=0)
    if name.startswith(("roi_heads.box_predictor.bbox_pred.", "roi_heads.mask_predictor.mask_fcn_logits.")):
        rows = 4 if "bbox_pred" in name else 1
        if to_torchvision:
            return torch.cat([torch.zeros_like(value[:rows]), value])
        return value[rows:]
    return value


def _anchor_order(name: str, value: torch.Tensor, to_torchvision: bool) -> torch.Tensor:
    anchors = SIZES_PER_LEVEL * RATIOS
    if not name.startswith(("head.classification_head.cls_logits.", "head.regression_head.bbox_reg.")):
        return value
    order = anchor_permutation()
    if not to_torchvision:
        order = [order.index(i) for i in range(anchors)]
    return _rows(value, order, value.shape[0] // anchors)


def convert(tensors: dict[str, torch.Tensor], kind: str, to_torchvision: bool) -> dict[str, torch.Tensor]:
    """A whole detector's tensors in the other library's names and row orders (keys neither names
    are left out: the caller reports them)."""
    steps: list[Callable[[str, torch.Tensor, bool], torch.Tensor]] = [_class_rows, _anchor_order]
    out = {}
    for name, value in tensors.items():
        if name.endswith("num_batches_tracked"):
            continue
        renamed = _rename(name, kind, to_torchvision)
        if renamed is None:
            continue
        key = renamed if to_torchvision else name
        for step in steps:
            value = step(key, value, to_torchvision)
        out[renamed] = value
    return out
