"""Transfer a whole detector: every tensor whose role and shape fit, as detectron2's
``DetectionCheckpointer``, MMDetection's ``load_from`` and torchvision's fine-tuning tutorial do it.

The target detector is built with the source's structure; then every tensor of its state whose
name and shape match the source's is copied, except the class-specific layers (Faster R-CNN's
``cls_score``/``bbox_pred``, Mask R-CNN's mask logits, RetinaNet's, FCOS's and SSD's
classification logits), which keep the initialisation the detector gave them, but for the rows of
target classes that a class map pairs with source classes, copied row by row. One line says what
transferred (:meth:`TransferReport.line`); the run's manifest records it.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from transferdet.errors import TransferdetError

RCNN_LAYERS = {r"roi_heads\.box_predictor\.cls_score\.": (1, True), r"roi_heads\.box_predictor\.bbox_pred\.": (4, True)}
# class-specific layers per detector kind: key pattern (matched at the start) -> (rows per class,
# whether a background row leads)
CLASS_LAYERS: dict[str, dict[str, tuple[int, bool]]] = {
    "fcos": {r"head\.classification_head\.cls_logits\.": (1, False)},
    "retinanet": {r"head\.classification_head\.cls_logits\.": (1, False)},
    "faster_rcnn_fpn": RCNN_LAYERS,
    "faster_rcnn_c4": RCNN_LAYERS,
    "mask_rcnn_fpn": {**RCNN_LAYERS, r"roi_heads\.mask_predictor\.mask_fcn_logits\.": (1, True)},
    "ssd": {r"head\.classification_head\.module_list\.\d+\.(weight|bias)": (1, True)},
    # SSDlite's classification head: a depthwise convolution with BN (class-agnostic), then the logits
    "ssdlite": {r"head\.classification_head\.module_list\.\d+\.1\.": (1, True)},
}  # fmt: skip
PARTS = (("backbone.body.", "backbone"), ("backbone.features.", "backbone"), ("backbone.", "fpn"), ("rpn.", "rpn"),
         ("roi_heads.", "roi_heads"),
         ("head.", "head"))  # fmt: skip


def class_layout(kind: str, builder: str | None = None) -> str:
    """Which :data:`CLASS_LAYERS` entry a detector's class-specific layers follow: its kind's, but
    SSDlite's own head (a torchvision builder used as torchvision builds it)."""
    return "ssdlite" if builder and builder.startswith("ssdlite") else kind


def part_of(key: str) -> str:
    """The detector part a state key belongs to (backbone, fpn, rpn, roi_heads, head)."""
    return next((name for prefix, name in PARTS if key.startswith(prefix)), "other")


@dataclass
class DetectorSource:
    """A whole detector to start from: its structure, class names (None when unknown) and weights."""

    origin: str
    record: dict[str, Any]  # a DetectorConfig record (kind, fpn_channels, anchors, ...)
    classes: list[str] | None
    state: dict[str, torch.Tensor]  # under transferdet's detector names
    body: str | None = None  # the spec its body is built from, where the source's own spec names no backbone

    @property
    def kind(self) -> str:
        return self.record["kind"]

    @property
    def layout(self) -> str:
        """Its class-specific layers' layout (:func:`class_layout`)."""
        return class_layout(self.kind, self.record.get("builder"))


# what a whole transfer takes from the source's record: the detector's structure (the recipe keeps
# the schedule, sizes, norm policy and frozen stages)
STRUCTURE = ("kind", "fpn_channels", "fpn_norm", "anchors", "ssd_scales", "extra", "frozen_bn_eps", "builder")


@dataclass
class TransferReport:
    """What a whole-detector transfer carried over, re-initialised and left out."""

    source: str
    total: int
    transferred: int
    by_part: dict[str, int]
    reinitialised: list[str]
    classes: str  # e.g. "91 -> 4 classes"
    rows_copied: list[str] = field(default_factory=list)  # target class names whose rows were copied
    left: list[str] = field(default_factory=list)  # "key (why)" for tensors that did not fit

    def line(self) -> str:
        parts = ", ".join(f"{name} {count}" for name, count in self.by_part.items())
        copied = f"{len(self.rows_copied)} row(s) copied: {', '.join(self.rows_copied)}"
        copied = copied if self.rows_copied else "no row copied"
        text = f"transferred {self.transferred}/{self.total} tensors from {self.source} ({parts})"
        if self.reinitialised:
            text += f"; re-initialised {', '.join(self.reinitialised)} ({self.classes}, {copied})"
        if self.left:
            text += f"; left {len(self.left)}: {', '.join(self.left[:4])}"
        return text

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "line": self.line()}


def class_pairs(target: list[str], source: list[str] | None, class_map: str | dict[str, str]) -> dict[int, int]:
    """target class index -> source class index. ``auto``: names equal ignoring case; ``none``:
    nothing; a mapping: target name -> source name (an unknown name is an error naming it)."""
    if class_map == "none" or not source:
        return {}
    names = [name.lower() for name in source]
    lowered = {name: index for index, name in enumerate(names) if names.count(name) == 1}
    if class_map == "auto":
        if [name.lower() for name in target] == names:  # the source's own classes: every row
            return {i: i for i in range(len(target))}
        # a name the source repeats (COCO's "N/A" placeholders) pairs with nothing
        return {i: lowered[name.lower()] for i, name in enumerate(target) if name.lower() in lowered}
    assert isinstance(class_map, dict)
    unknown = [t for t in class_map if t not in target] + [s for s in class_map.values() if s.lower() not in lowered]
    # (a source name it repeats is unknown too: it names no one row)
    if unknown:
        raise TransferdetError(f"--class-map: unknown class name(s): {', '.join(map(repr, unknown))}")
    return {target.index(t): lowered[s.lower()] for t, s in class_map.items()}


def class_layer(kind: str, key: str) -> tuple[int, bool] | None:
    """The class-specific rule of ``key`` in a detector of ``kind`` (None: a class-agnostic tensor)."""
    return next((rule for pattern, rule in CLASS_LAYERS.get(kind, {}).items() if re.match(pattern, key)), None)


def _copy_rows(value: torch.Tensor, source: torch.Tensor, pairs: dict[int, int], rule: tuple[int, bool],
               counts: tuple[int, int]) -> torch.Tensor:  # fmt: skip
    """``value`` with the rows of paired classes taken from ``source``; the first dimension holds
    ``anchors x classes x rows`` (background first where the rule says so)."""
    rows, background = rule
    target_classes, source_classes = counts
    offset = 1 if background else 0
    per_anchor_t, per_anchor_s = (target_classes + offset) * rows, (source_classes + offset) * rows
    anchors = value.shape[0] // per_anchor_t
    if anchors * per_anchor_t != value.shape[0] or anchors * per_anchor_s != source.shape[0]:
        return value  # a layout this rule does not describe: keep the fresh initialisation
    out = value.clone()
    for anchor in range(anchors):
        pieces = [(0, 0)] if background else []  # the background row (or rows) is not class-specific
        for t, s in [*pieces, *((t + offset, s + offset) for t, s in pairs.items())]:
            start_t, start_s = anchor * per_anchor_t + t * rows, anchor * per_anchor_s + s * rows
            out[start_t : start_t + rows] = source[start_s : start_s + rows]
    return out


def transfer_state(
    model: torch.nn.Module,
    state: dict[str, torch.Tensor],
    source: str,
    classes: tuple[list[str], list[str] | None],
    class_map: str | dict[str, str] = "auto",
    parts: tuple[str, ...] | None = None,
) -> TransferReport:
    """Copy ``state`` (a detector of the same kind and structure) into ``model``: every tensor whose
    name and shape fit, class-specific layers row by row for paired classes; only the ``parts``
    named (:func:`part_of`) where given (``("backbone",)``: the body alone). Returns the report."""
    kind = model.class_layout
    target_classes, source_classes = classes
    pairs = class_pairs(target_classes, source_classes, class_map)
    own = model.state_dict()
    loaded: dict[str, torch.Tensor] = {}
    by_part: dict[str, int] = {}
    reinitialised: set[str] = set()
    left = []
    for key, value in own.items():
        if (parts is not None and part_of(key) not in parts) or key.endswith("num_batches_tracked"):
            continue  # another part, or batch-norm bookkeeping (absent where the source froze its norms)
        rule = class_layer(kind, key)
        incoming = state.get(key)
        if rule is not None:
            reinitialised.add(key.rsplit(".", 1)[0])
            if incoming is not None and source_classes is not None:
                loaded[key] = _copy_rows(value, incoming, pairs, rule, (len(target_classes), len(source_classes)))
            continue
        if incoming is None:
            left.append(f"{key} (not in the source)")
        elif tuple(incoming.shape) != tuple(value.shape):
            left.append(f"{key} ({tuple(incoming.shape)} vs {tuple(value.shape)})")
        else:
            loaded[key] = incoming
            by_part[part_of(key)] = by_part.get(part_of(key), 0) + 1
    model.load_state_dict({**own, **loaded})
    counts = f"{len(source_classes) if source_classes is not None else '?'} -> {len(target_classes)} classes"
    copied = [target_classes[t] for t in sorted(pairs)] if source_classes is not None else []
    total = sum(1 for key in own if not key.endswith("num_batches_tracked"))
    return TransferReport(source, total, sum(by_part.values()), by_part, sorted(reinitialised), counts, copied, left)


def read_class_map(value: str) -> str | dict[str, str]:
    """``auto``, ``none``, or a YAML/JSON file mapping target class names to source class names."""
    if value in ("auto", "none"):
        return value
    from transferdet.safe_load import load_yaml

    content = load_yaml(Path(value))
    if not isinstance(content, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in content.items()):
        raise TransferdetError(f"{value}: a class map maps target class names to source class names")
    return content
