"""From a batch of images and their ground-truth boxes to one vector per box, for each layer kind
DESIGN.md names (after Fouquet et al., "Transferability Metrics for Object Detection", 2023):

- a backbone stage ``c2``..``c5``, or an FPN level ``p2``..``p7`` of a trained detector: RoI-Align
  (7x7, sampling ratio 2, aligned) of the box on that map, average-pooled (``local``), or the whole
  map average-pooled (``global``);
- ``fpn_ms``: each box pooled from the FPN level that Faster R-CNN's level mapper assigns it (Lin et
  al., "Feature Pyramid Networks for Object Detection", CVPR 2017, eq. 1: k = 4 + log2(sqrt(wh)/224)),
  through the detector's own multi-scale RoI pooler where it has one;
- ``fc7``: the output of a Faster R-CNN's box head (two fully connected layers after the FPN
  pooler, or the last backbone stage for the C4 detector) on the box.

FPN levels, ``fpn_ms`` and ``fc7`` need a trained detector (a ``transferdet train`` run folder):
a backbone checkpoint alone has no FPN or box head weights.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import torch
from torchvision.ops import MultiScaleRoIAlign, roi_align
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool, LastLevelP6P7

from transferdet.errors import TransferdetError
from transferdet.models.backbone import Backbone

ROI_SIZE = 7
DETECTOR_ONLY = ("fpn_ms", "fc7")

# (images N x 3 x H x W, boxes per image in pixels, each image's (height, width)) -> vectors per image
Pooler = Callable[[torch.Tensor, list[torch.Tensor], list[tuple[int, int]]], list[torch.Tensor]]


def _pyramid(detector: torch.nn.Module | None) -> torch.nn.Module | None:
    """The detector's FPN module (``FeaturePyramid``), if it has one."""
    backbone = getattr(detector, "backbone", None)
    return backbone if backbone is not None and hasattr(backbone, "fpn") else None


def _level_names(pyramid: torch.nn.Module) -> dict[str, str]:
    """FPN output key -> ``pK`` named by stride 2**K (``c3`` -> ``p3``; the extra levels -> p6, p7)."""
    first = int(pyramid.levels[0][1:])
    names = {}
    for offset, key in enumerate([*pyramid.levels, *_extra_keys(pyramid)]):
        names[key] = f"p{first + offset}"
    return names


def _extra_keys(pyramid: torch.nn.Module) -> list[str]:
    """The keys torchvision's extra FPN blocks add: ``pool`` (max-pooled last level) or ``p6, p7``."""
    extra = pyramid.fpn.extra_blocks
    if isinstance(extra, LastLevelMaxPool):
        return ["pool"]
    return ["p6", "p7"] if isinstance(extra, LastLevelP6P7) else []


def available_layers(backbone: Backbone, detector: torch.nn.Module | None = None) -> list[str]:
    layers = list(backbone.feature_names)
    pyramid = _pyramid(detector)
    if pyramid is not None:
        layers += list(_level_names(pyramid).values()) + ["fpn_ms"]
    if detector is not None and hasattr(detector, "roi_heads"):
        layers.append("fc7")
    return layers


def make_pooler(backbone: Backbone, layer: str, kind: str, detector: torch.nn.Module | None = None) -> Pooler:
    """The pooler for ``layer``; an unknown layer is an error naming the ones this model has."""
    layers = available_layers(backbone, detector)
    if layer not in layers:
        hint = "" if detector is not None else " (FPN levels, fpn_ms and fc7 need a detector: a transferdet run folder)"
        raise TransferdetError(f"layer {layer!r}: this model has {', '.join(layers)}{hint}")
    if layer in DETECTOR_ONLY and kind != "local":
        raise TransferdetError(f"layer {layer}: pools each box, so only --features local applies")
    if layer in backbone.channels:
        return _map_pooler(backbone.truncated(layer), layer, backbone.strides[layer], kind)
    pyramid = _pyramid(detector)
    if layer == "fpn_ms":
        own = getattr(getattr(detector, "roi_heads", None), "box_roi_pool", None)
        pooler = own if isinstance(own, MultiScaleRoIAlign) else MultiScaleRoIAlign(list(pyramid.levels), ROI_SIZE, 2)
        return _multiscale_pooler(pyramid, pooler, None)
    if layer == "fc7":
        heads = detector.roi_heads
        return _multiscale_pooler(detector.backbone, heads.box_roi_pool, heads.box_head)
    key = next(k for k, name in _level_names(pyramid).items() if name == layer)
    return _map_pooler(pyramid, key, 2 ** int(layer[1:]), kind)


def _map_pooler(net: torch.nn.Module, key: str, stride: int, kind: str) -> Pooler:
    def pool(images: torch.Tensor, boxes: list[torch.Tensor], shapes: list[tuple[int, int]]) -> list[torch.Tensor]:
        feature_map = net(images)[key].float()
        out = []
        for j, (image_boxes, (height, width)) in enumerate(zip(boxes, shapes, strict=True)):
            if kind == "local":
                pooled = roi_align(feature_map[j : j + 1], [image_boxes], ROI_SIZE, 1.0 / stride, 2, aligned=True)
                out.append(pooled.mean(dim=(2, 3)))
            else:
                h, w = max(1, -(-height // stride)), max(1, -(-width // stride))
                out.append(feature_map[j, :, :h, :w].mean(dim=(1, 2)).expand(len(image_boxes), -1))
        return out

    return pool


def _multiscale_pooler(net: torch.nn.Module, roi_pool: MultiScaleRoIAlign, head: torch.nn.Module | None) -> Pooler:
    def pool(images: torch.Tensor, boxes: list[torch.Tensor], shapes: list[tuple[int, int]]) -> list[torch.Tensor]:
        maps = OrderedDict((k, v.float()) for k, v in net(images).items())
        pooled = roi_pool(maps, boxes, shapes)
        vectors = head(pooled) if head is not None else pooled.mean(dim=(2, 3))
        return list(torch.split(vectors.flatten(1), [len(b) for b in boxes]))

    return pool
