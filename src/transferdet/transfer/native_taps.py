"""rank's taps on a detector torchvision builds itself (:mod:`~transferdet.models.native_detectors`:
the v2 heads, Faster R-CNN over MobileNetV3, SSD300, SSDlite320), read as rank reads transferdet's own
detectors (after the TMOD paper, Fouquet et al. 2023, and Det-LogME, Wang et al., WACV 2024, which
rank a detector on its own neck and head):

- the body's stages ``cK`` (the last of its modules at stride 2**K);
- the neck's levels ``pK``, named by stride: an FPN's outputs, or the maps SSD's heads read (SSD300:
  conv4_3 rescaled by its learned L2 norm, then the extra layers; SSDlite: the C4 expansion, C5 and
  the extra layers);
- ``fpn_ms``: each box from the FPN level the multi-scale pooler assigns it (not SSD's: its levels
  differ in width, so no one pooler reads them);
- ``fc7``: the box head's output on the detector's own RoI pooler (Faster and Mask R-CNN: the 4-conv
  + fc head of the v2 builders, the two-fc head over MobileNetV3);
- ``cls_tower``: RetinaNet v2's classification tower (four GroupNorm convolutions shared by the
  levels) at the box's level. SSD300's class logits read the maps directly, and SSDlite's one
  depthwise convolution per level keeps each level's width: neither has a tower rank reads.

The wrapper holds the model's own modules (nothing copied), so the numbers are the model's.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from transferdet.models.backbone import Backbone
from transferdet.models.native_detectors import native_body

NATIVE_PATH = {"backbone": "torchvision-native-v1"}  # the feature cache's key field of this path
PROBE = 320  # the input side strides and channels are measured at (SSD300's extra layers need >= 300)


class FpnNeck(nn.Module):
    """A torchvision ``BackboneWithFPN``'s FPN on the maps of the body as a transferdet backbone."""

    def __init__(self, body: Backbone, fpn: nn.Module, inputs: dict[str, str]) -> None:
        super().__init__()
        self.body, self.fpn = body, fpn
        self.inputs = dict(inputs)  # the FPN's input key -> the body feature it reads
        self.levels = list(inputs)
        self.level_names: dict[str, str] = {}
        self.extra_keys: list[str] = []

    def from_body(self, body: OrderedDict[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
        return self.fpn(OrderedDict((key, body[name]) for key, name in self.inputs.items()))


class SsdNeck(nn.Module):
    """The maps SSD's heads read, from the body's maps: the body's tapped maps (SSD300's first one
    rescaled by its learned L2 norm, Liu et al., "ParseNet", 2015), then the extra layers run on the
    deepest of them, as torchvision's SSD feature extractors compute them."""

    def __init__(self, body: Backbone, extractor: nn.Module, taps: list[str], min_input: int) -> None:
        super().__init__()
        self.body, self.extra, self.taps = body, extractor.extra, list(taps)
        self.min_input = min_input  # SSD300's unpadded extra layers need its own input side
        self.scale_weight = getattr(extractor, "scale_weight", None)
        self.levels = [str(i) for i in range(len(taps) + len(self.extra))]
        self.level_names: dict[str, str] = {}
        self.extra_keys: list[str] = []
        self.measured_strides = True  # SSD300's last maps are not at powers of two: strides from sizes
        self.multiscale = False  # its levels differ in width: no one pooler reads them all

    def from_body(self, body: OrderedDict[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
        maps = [body[name] for name in self.taps]
        if self.scale_weight is not None:
            maps[0] = self.scale_weight.view(1, -1, 1, 1) * F.normalize(maps[0])
        x = body[self.taps[-1]]
        for block in self.extra:
            x = block(x)
            maps.append(x)
        return OrderedDict((str(i), m) for i, m in enumerate(maps))


class NativeTaps(nn.Module):
    """What rank reads of a native detector: ``backbone`` (the neck, whose ``body`` is the body as a
    transferdet backbone), ``roi_heads`` (two-stage) and ``head`` (RetinaNet: its tower)."""

    def __init__(self, model: nn.Module, neck: nn.Module) -> None:
        super().__init__()
        self.backbone = neck
        if hasattr(model, "roi_heads"):
            self.roi_heads = model.roi_heads
        head = getattr(model, "head", None)
        scoring = getattr(head, "classification_head", None)
        if hasattr(scoring, "conv"):
            self.head = head


def native_taps(model: nn.Module) -> NativeTaps:
    """The taps of ``model``, a detector built by :func:`~transferdet.models.native_detectors.build_native`
    (eval mode): its body as a transferdet backbone, and its neck and heads around it."""
    probe = torch.zeros(1, 3, PROBE, PROBE)
    raw = native_body(model)
    if hasattr(model.backbone, "fpn"):
        inputs = dict(raw.return_layers)  # the body's module -> the FPN's input key
        body, names = _as_backbone(raw, list(inputs), probe)
        neck: nn.Module = FpnNeck(body, model.backbone.fpn, {key: names[child] for child, key in inputs.items()})
    else:
        body, names = _as_backbone(raw, [], probe)
        children = list(dict(raw.named_children()))
        deepest = [names[c] for c in children if c in names]
        taps = deepest[-1:] if hasattr(model.backbone, "scale_weight") else deepest[-2:]
        neck = SsdNeck(body, model.backbone, taps, max(getattr(model.transform, "fixed_size", None) or (0,)))
    with torch.no_grad():
        maps = neck.from_body(body(probe))
    _name_levels(neck, maps)
    return NativeTaps(model, neck).eval()


def _as_backbone(raw: nn.Module, inputs: list[str], probe: torch.Tensor) -> tuple[Backbone, dict[str, str]]:
    """``raw`` (an ``IntermediateLayerGetter`` or a ``Sequential``: children run in order) as a
    transferdet backbone: the last child at each stride 2**K emits ``cK``; a child the neck reads that
    is not the last at its stride emits ``cK_<child>``. Returns it and child -> feature name."""
    strides, channels = {}, {}
    x = probe
    with torch.no_grad():
        for name, child in raw.named_children():
            x = child(x)
            strides[name], channels[name] = round(math.log2(PROBE / x.shape[-1])), x.shape[1]
    children = list(strides)
    names = {}
    for i, child in enumerate(children):
        last = i + 1 == len(children) or strides[children[i + 1]] != strides[child]
        if last and strides[child] >= 1:
            names[child] = f"c{strides[child]}"
        elif child in inputs:
            names[child] = f"c{strides[child]}_{child}"
    body = Backbone(
        list(raw.named_children()),
        names,
        {names[c]: channels[c] for c in names},
        {names[c]: 2 ** strides[c] for c in names},
        mean=raw.mean,
        std=raw.std,
    )
    return body, names


def _name_levels(neck: nn.Module, maps: OrderedDict[str, torch.Tensor]) -> None:
    """The neck's output maps named ``pK``: an FPN's by its stride 2**K at the probe size (where two
    share a stride, the FPN over MobileNetV3's two stride-32 maps, the later one takes the name; its
    outputs beyond its inputs, ``pool``, ``p6``, ``p7``, are extra levels); SSD's in order from its
    first map's stride (its last maps are not at powers of two, and are read at their measured stride)."""
    strides = [round(math.log2(PROBE / m.shape[-1])) for m in maps.values()]
    if getattr(neck, "measured_strides", False):
        strides = [strides[0] + i for i in range(len(strides))]
    for key, stride in zip(maps, strides, strict=True):
        neck.level_names = {k: v for k, v in neck.level_names.items() if v != f"p{stride}"} | {key: f"p{stride}"}
    neck.extra_keys = [key for key in maps if key not in neck.levels]
