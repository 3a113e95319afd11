"""From a batch of images and their ground-truth boxes to one vector per box, for each layer kind
DESIGN.md names (after Fouquet et al., "Transferability Metrics for Object Detection", 2023):

- a backbone stage ``c2``..``c5``, or an FPN level ``p2``..``p7`` of a trained detector: RoI-Align
  (7x7, sampling ratio 2, aligned) of the box on that map, average-pooled (``local``; computed as
  separable weights, :mod:`~transferdet.transfer.box_pooling`), or the whole map average-pooled
  (``global``);
- ``fpn_ms``: each box pooled from the FPN level that Faster R-CNN's level mapper assigns it (Lin et
  al., "Feature Pyramid Networks for Object Detection", CVPR 2017, eq. 1: k = 4 + log2(sqrt(wh)/224)),
  through the detector's own multi-scale RoI pooler where it has one;
- ``fc7``: the output of a Faster R-CNN's box head (two fully connected layers after the FPN
  pooler, or the last backbone stage for the C4 detector) on the box;
- ``cls_tower``: a one-stage detector's (FCOS's, RetinaNet's) classification tower, the
  convolutions before its class logits, run on every FPN level; each box pooled from the tower's
  output at the level ``fpn_ms`` reads it from (the TMOD paper's and Det-LogME's idea of ranking a
  detector on its own head).

FPN levels, ``fpn_ms`` and ``fc7`` need a detector (a ``transferdet train`` run folder or a
detector file; torchvision's own builders through :mod:`~transferdet.transfer.native_taps`): a
backbone checkpoint alone has no FPN or box head weights. Several layers come from one forward
pass: the body runs once and the FPN runs on its maps.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import torch
from torchvision.ops import MultiScaleRoIAlign

from transferdet.errors import TransferdetError
from transferdet.models.backbone import Backbone
from transferdet.transfer.box_pooling import ROI_SIZE, SAMPLING_RATIO, box_means

DETECTOR_ONLY = ("fpn_ms", "fc7", "cls_tower")

# (images N x 3 x H x W, boxes per image in pixels, each image's (height, width)) -> for each
# layer, the vectors of each image's boxes
Pooler = Callable[[torch.Tensor, list[torch.Tensor], list[tuple[int, int]]], dict[str, list[torch.Tensor]]]


def detector_layer(layer: str) -> bool:
    """A layer only a detector has (an FPN level, ``fpn_ms``, ``fc7``, ``cls_tower``): a backbone
    source gets no row for it, so that mixed lists rank detectors apart on it."""
    base = layer.split("/")[0]
    return base in DETECTOR_ONLY or (len(base) == 2 and base[0] == "p" and base[1].isdigit())


def _pyramid(detector: torch.nn.Module | None) -> torch.nn.Module | None:
    """The detector's pyramid (``FeaturePyramid``, or ``SimplePyramid`` over a plain backbone), if
    it has one."""
    backbone = getattr(detector, "backbone", None)
    return backbone if backbone is not None and hasattr(backbone, "from_body") else None


def _level_names(pyramid: torch.nn.Module) -> dict[str, str]:
    """FPN output key -> ``pK`` named by stride 2**K (``c3`` -> ``p3``; the extra levels -> p6, p7);
    a torchvision-built neck names its own (:mod:`~transferdet.transfer.native_taps`)."""
    if getattr(pyramid, "level_names", None):
        return dict(pyramid.level_names)
    first = int(pyramid.levels[0][1:])
    names = {}
    for offset, key in enumerate([*pyramid.levels, *pyramid.extra_keys]):
        names[key] = f"p{first + offset}"
    return names


def available_layers(backbone: Backbone, detector: torch.nn.Module | None = None) -> list[str]:
    layers = list(backbone.feature_names)
    pyramid = _pyramid(detector)
    if pyramid is not None:
        layers += list(_level_names(pyramid).values())
        layers += ["fpn_ms"] if getattr(pyramid, "multiscale", True) else []  # SSD's levels differ in width
    if detector is not None and hasattr(detector, "roi_heads"):
        layers.append("fc7")
    if _tower(detector) is not None and pyramid is not None:
        layers.append("cls_tower")
    return layers


def _tower(detector: torch.nn.Module | None) -> torch.nn.Module | None:
    """A one-stage detector's classification tower (FCOS's and RetinaNet's ``conv``), if any."""
    head = getattr(getattr(detector, "head", None), "classification_head", None)
    return getattr(head, "conv", None)


def check_layer(backbone: Backbone, layer: str, kind: str, detector: torch.nn.Module | None = None) -> None:
    """An unknown layer is an error naming the ones this model has."""
    layers = available_layers(backbone, detector)
    if backbone.map_for(layer) not in layers:
        hint = " (FPN levels, fpn_ms and fc7 need a detector: a run folder or a detector file)"
        hint = "" if detector is not None else hint
        raise TransferdetError(f"layer {layer!r}: this model has {', '.join(layers)}{hint}")
    if layer in DETECTOR_ONLY and kind != "local":
        raise TransferdetError(f"layer {layer}: pools each box, so only --features local applies")


def make_pooler(backbone: Backbone, layers: list[str], kind: str, detector: torch.nn.Module | None = None) -> Pooler:
    """One pooler for all of ``layers``: a single forward pass through the backbone (and the
    detector's FPN where a layer needs it) gives every layer's vectors. ``c5`` on a backbone
    without a stride-32 map reads its deepest map (:meth:`~transferdet.models.backbone.Backbone.map_for`)."""
    for layer in layers:
        check_layer(backbone, layer, kind, detector)
    source = {layer: backbone.map_for(layer) for layer in layers}  # c5 of a plain ViT: its one map
    stages = [source[layer] for layer in layers if source[layer] in backbone.channels]
    needs_detector = len(stages) < len(layers)
    deepest = max(stages, key=backbone.stage_index) if stages else None
    # the detector's maps are computed from the whole body's; stages alone stop at the deepest asked
    trunk = backbone if needs_detector else backbone.truncated(deepest)
    pyramid = _pyramid(detector)
    level_keys = {name: key for key, name in _level_names(pyramid).items()} if pyramid is not None else {}

    def pool(images: torch.Tensor, boxes: list[torch.Tensor], shapes: list[tuple[int, int]]) -> dict[str, list]:
        images = _padded_to(images, getattr(pyramid, "min_input", 0))
        body = trunk(images)
        maps = _detector_maps(detector.backbone, body) if needs_detector else None
        out = {}
        for layer in layers:
            if source[layer] in backbone.channels:
                out[layer] = _pool_map(body[source[layer]], backbone.strides[source[layer]], kind, boxes, shapes)
            elif layer in level_keys:
                stride = _level_stride(pyramid, layer, images, maps[level_keys[layer]])
                out[layer] = _pool_map(maps[level_keys[layer]], stride, kind, boxes, shapes)
            else:
                out[layer] = _pool_multiscale(layer, detector, maps, boxes, shapes)
        return out

    return pool


def _padded_to(images: torch.Tensor, side: int) -> torch.Tensor:
    """The batch padded with zeros on the bottom and right to at least ``side`` each way (boxes keep
    their coordinates): SSD300's extra layers shrink their maps without padding."""
    bottom, right = max(0, side - images.shape[-2]), max(0, side - images.shape[-1])
    return torch.nn.functional.pad(images, (0, right, 0, bottom)) if bottom or right else images


def _level_stride(pyramid: torch.nn.Module, layer: str, images: torch.Tensor, feature_map: torch.Tensor) -> float:
    """Level ``pK``'s stride: 2**K, or where the neck's maps are not at powers of two (SSD300's last
    ones) the padded input's width over the map's."""
    if getattr(pyramid, "measured_strides", False):
        return images.shape[-1] / feature_map.shape[-1]
    return 2 ** int(layer[1:])


def _detector_maps(net: torch.nn.Module, body: OrderedDict[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
    """What the detector's backbone (an FPN over the body, or the body cut at one map) gives, from
    the body's maps already computed."""
    if hasattr(net, "from_body"):
        return net.from_body(body)
    return OrderedDict([(net.level, body[net.level])])


def _pool_map(
    feature_map: torch.Tensor, stride: int, kind: str, boxes: list[torch.Tensor], shapes: list[tuple[int, int]]
) -> list[torch.Tensor]:
    feature_map = feature_map.float()
    out = []
    for j, (image_boxes, (height, width)) in enumerate(zip(boxes, shapes, strict=True)):
        if kind == "local":
            out.append(box_means(feature_map[j], image_boxes.to(feature_map.device), 1.0 / stride))
        else:
            h, w = max(1, -(-height // stride)), max(1, -(-width // stride))
            out.append(feature_map[j, :, :h, :w].mean(dim=(1, 2)).expand(len(image_boxes), -1))
    return out


def _pool_multiscale(
    layer: str,
    detector: torch.nn.Module,
    maps: OrderedDict[str, torch.Tensor],
    boxes: list[torch.Tensor],
    shapes: list[tuple[int, int]],
) -> list[torch.Tensor]:
    """``fpn_ms`` (each box from its FPN level, through the detector's own multi-scale pooler where
    it has one), ``fc7`` (the box head on the detector's RoI pooler) or ``cls_tower`` (the
    classification tower's output, each box at its FPN level)."""
    heads = getattr(detector, "roi_heads", None)
    maps = OrderedDict((k, v.float()) for k, v in maps.items())
    if layer == "fc7":
        vectors = heads.box_head(heads.box_roi_pool(maps, boxes, shapes))
    elif layer == "cls_tower":
        tower = _tower(detector)
        levels = list(detector.backbone.levels)
        towers = OrderedDict((key, tower(maps[key])) for key in levels)
        vectors = MultiScaleRoIAlign(levels, ROI_SIZE, SAMPLING_RATIO)(towers, boxes, shapes).mean(dim=(2, 3))
    else:
        own = getattr(heads, "box_roi_pool", None)
        levels = list(detector.backbone.levels)
        pooler = own if isinstance(own, MultiScaleRoIAlign) else MultiScaleRoIAlign(levels, ROI_SIZE, SAMPLING_RATIO)
        vectors = pooler(maps, boxes, shapes).mean(dim=(2, 3))
    return list(torch.split(vectors.flatten(1), [len(b) for b in boxes]))
