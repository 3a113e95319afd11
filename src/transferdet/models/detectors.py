"""torchvision detectors over any :class:`~transferdet.models.backbones.Backbone`.

- ``faster_rcnn_fpn`` / ``mask_rcnn_fpn``: FPN on c2..c5 plus a max-pooled level (Lin et al.,
  "Feature Pyramid Networks for Object Detection", 2017; He et al., "Mask R-CNN", 2017);
- ``faster_rcnn_c4``: the stride-16 map feeds the RPN and RoI-Align (14x14), the last backbone
  stage is the box head, as in the VOC transfer protocol of MoCo (He et al., 2020);
- ``retinanet`` (Lin et al., "Focal Loss for Dense Object Detection", 2017) and ``fcos`` (Tian et al.,
  2019): FPN on c3..c5 plus P6/P7;
- ``ssd`` (Liu et al., 2016): c3..c5 plus two extra stride-2 blocks, default boxes per map.

Softmax detectors (Faster/Mask R-CNN, SSD) keep class 0 for background, so the data's labels are
shifted by ``detector.label_offset`` (1); sigmoid detectors (RetinaNet, FCOS) use them as they are.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import torch
from torch import nn
from torchvision.models.detection import FCOS, FasterRCNN, MaskRCNN, RetinaNet
from torchvision.models.detection.anchor_utils import AnchorGenerator, DefaultBoxGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
from torchvision.models.detection.rpn import RPNHead
from torchvision.models.detection.ssd import SSD, SSDHead
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import FeaturePyramidNetwork, LastLevelMaxPool, LastLevelP6P7

from transferdet.errors import TransferdetError
from transferdet.models.anchors import RETINANET_OCTAVES, AnchorSpec, default_anchors, ssd_scales
from transferdet.models.backbones import Backbone, apply_norm_policy, freeze_stages

DETECTORS = ("faster_rcnn_fpn", "faster_rcnn_c4", "mask_rcnn_fpn", "retinanet", "fcos", "ssd")
SOFTMAX_DETECTORS = ("faster_rcnn_fpn", "faster_rcnn_c4", "mask_rcnn_fpn", "ssd")


@dataclass
class DetectorConfig:
    """How to build a detector; ``anchors`` None means torchvision-style defaults."""

    kind: str
    num_classes: int
    min_size: int | tuple[int, ...] = 800
    max_size: int = 1333
    fpn_channels: int = 256
    norm: str = "frozen_bn"
    freeze_at: int = 0
    anchors: AnchorSpec | None = None
    ssd_scales: list[float] | None = None
    box_score_thresh: float = 0.05
    detections_per_image: int = 100
    extra: dict = field(default_factory=dict)  # more keyword arguments for the torchvision model


class FeaturePyramid(nn.Module):
    """A backbone's ``levels`` through an FPN; ``out_channels`` as torchvision detectors expect."""

    def __init__(self, body: Backbone, levels: list[str], out_channels: int, extra: str) -> None:
        super().__init__()
        self.body = body.truncated(levels[-1])
        self.levels = levels
        extra_block = LastLevelMaxPool() if extra == "pool" else LastLevelP6P7(out_channels, out_channels)
        self.fpn = FeaturePyramidNetwork([body.channels[lv] for lv in levels], out_channels, extra_blocks=extra_block)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        features = self.body(x)
        return self.fpn(OrderedDict((level, features[level]) for level in self.levels))


class SingleMap(nn.Module):
    """A backbone cut after one feature map, returned as the only map (the C4 trunk)."""

    def __init__(self, body: Backbone, level: str) -> None:
        super().__init__()
        self.body = body.truncated(level)
        self.level = level
        self.out_channels = body.channels[level]

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        return OrderedDict([(self.level, self.body(x)[self.level])])


class StageBoxHead(nn.Module):
    """The backbone's stages from c4 to c5 on RoI features, average-pooled: the C4 box head."""

    def __init__(self, body: Backbone) -> None:
        super().__init__()
        self.stages = nn.Sequential(*body.stages_between("c4", "c5"))
        self.nhwc = body.nhwc
        self.out_channels = body.channels["c5"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2) if self.nhwc else self.stages(x)
        return torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)


class SSDFeatures(nn.Module):
    """c3..c5 of the backbone plus ``extras`` stride-2 blocks, for SSD's multi-map head."""

    def __init__(self, body: Backbone, extras: int = 2, width: int = 256) -> None:
        super().__init__()
        self.levels = [lv for lv in ("c3", "c4", "c5") if lv in body.channels]
        self.body = body.truncated(self.levels[-1])
        blocks, channels = [], body.channels[self.levels[-1]]
        for _ in range(extras):
            blocks.append(
                nn.Sequential(
                    nn.Conv2d(channels, width // 2, 1),
                    nn.ReLU(inplace=True),
                    nn.Conv2d(width // 2, width, 3, stride=2, padding=1),
                    nn.ReLU(inplace=True),
                )
            )
            channels = width
        self.extras = nn.ModuleList(blocks)
        self.out_channels = [body.channels[lv] for lv in self.levels] + [width] * extras

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        features = self.body(x)
        maps = [features[lv] for lv in self.levels]
        y = maps[-1]
        for block in self.extras:
            y = block(y)
            maps.append(y)
        return OrderedDict((str(i), m) for i, m in enumerate(maps))


def _fpn_levels(body: Backbone, wanted: tuple[str, ...]) -> list[str]:
    levels = [lv for lv in wanted if lv in body.channels]
    if len(levels) < 2:
        raise TransferdetError(f"backbone gives {', '.join(body.feature_names)}: not enough maps for an FPN")
    return levels


def _anchor_generator(anchors: AnchorSpec, maps: int, octaves: tuple[float, ...] = (1.0,)) -> AnchorGenerator:
    if len(anchors.sizes) != maps:
        anchors = AnchorSpec(tuple(anchors.sizes[0] * 2**i for i in range(maps)), anchors.ratios)
    return AnchorGenerator(anchors.per_level(octaves), anchors.ratios_per_level())


def build_detector(body: Backbone, config: DetectorConfig) -> nn.Module:
    """A torchvision detector of ``config.kind`` over ``body``, norm policy and frozen stages
    applied to the backbone. The model gets ``label_offset`` (see the module docstring)."""
    if config.kind not in DETECTORS:
        raise TransferdetError(f"unknown detector {config.kind!r} (choose from {', '.join(DETECTORS)})")
    if config.num_classes < 1:
        raise TransferdetError("a detector needs at least one class")
    apply_norm_policy(body, config.norm)
    freeze_stages(body, config.freeze_at)
    common = {
        "min_size": config.min_size,
        "max_size": config.max_size,
        "image_mean": list(body.mean),
        "image_std": list(body.std),
        **config.extra,
    }
    kind, classes = config.kind, config.num_classes
    if kind in ("faster_rcnn_fpn", "mask_rcnn_fpn"):
        levels = _fpn_levels(body, ("c2", "c3", "c4", "c5"))
        backbone = FeaturePyramid(body, levels, config.fpn_channels, "pool")
        anchors = _anchor_generator(config.anchors or default_anchors(), len(levels) + 1)
        kwargs = {
            "rpn_anchor_generator": anchors,
            "box_roi_pool": MultiScaleRoIAlign(levels, 7, 2),
            "box_score_thresh": config.box_score_thresh,
            "box_detections_per_img": config.detections_per_image,
            **common,
        }
        if kind == "mask_rcnn_fpn":
            model = MaskRCNN(backbone, classes + 1, mask_roi_pool=MultiScaleRoIAlign(levels, 14, 2), **kwargs)
        else:
            model = FasterRCNN(backbone, classes + 1, **kwargs)
    elif kind == "faster_rcnn_c4":
        if "c4" not in body.channels or "c5" not in body.channels:
            raise TransferdetError("faster_rcnn_c4 needs a backbone with c4 and c5 maps")
        head = StageBoxHead(body)
        spec = config.anchors or default_anchors()
        generator = AnchorGenerator((tuple(spec.sizes),), (tuple(spec.ratios),))  # the whole ladder on one map
        model = FasterRCNN(
            SingleMap(body, "c4"),
            rpn_anchor_generator=generator,
            rpn_head=RPNHead(body.channels["c4"], generator.num_anchors_per_location()[0]),
            box_roi_pool=MultiScaleRoIAlign(["c4"], 14, 2),
            box_head=head,
            box_predictor=FastRCNNPredictor(head.out_channels, classes + 1),
            box_score_thresh=config.box_score_thresh,
            box_detections_per_img=config.detections_per_image,
            **common,
        )
    elif kind in ("retinanet", "fcos"):
        levels = _fpn_levels(body, ("c3", "c4", "c5"))
        backbone = FeaturePyramid(body, levels, config.fpn_channels, "p6p7")
        if kind == "retinanet":
            spec = config.anchors or AnchorSpec(tuple(32.0 * 2**i for i in range(5)))
            model = RetinaNet(
                backbone,
                classes,
                anchor_generator=_anchor_generator(spec, 5, RETINANET_OCTAVES),
                score_thresh=config.box_score_thresh,
                detections_per_img=config.detections_per_image,
                **common,
            )
        else:
            strides = [body.strides[levels[0]] * 2**i for i in range(5)]
            generator = AnchorGenerator(tuple((float(s),) for s in strides), ((1.0,),) * 5)
            model = FCOS(
                backbone,
                classes,
                anchor_generator=generator,
                score_thresh=config.box_score_thresh,
                detections_per_img=config.detections_per_image,
                **common,
            )
            # torchvision's FCOS passes its box distances through a ReLU and starts their bias at 0:
            # with some seeds the first updates push every output below 0 and the regression never
            # recovers (GIoU loss stuck at 1.0, AP 0). Start the distances at one anchor size.
            torch.nn.init.constant_(model.head.regression_head.bbox_reg.bias, 1.0)
    else:  # ssd
        features = SSDFeatures(body)
        size = config.min_size if isinstance(config.min_size, int) else max(config.min_size)
        maps = len(features.out_channels)
        generator = DefaultBoxGenerator([[2]] * maps, scales=config.ssd_scales or ssd_scales([], size, maps))
        head = SSDHead(features.out_channels, generator.num_anchors_per_location(), classes + 1)
        model = SSD(
            features,
            generator,
            (size, size),
            classes + 1,
            image_mean=list(body.mean),
            image_std=list(body.std),
            head=head,
            **config.extra,
            score_thresh=config.box_score_thresh,
            detections_per_img=config.detections_per_image,
        )
    model.label_offset = 1 if kind in SOFTMAX_DETECTORS else 0
    model.detector_kind = kind
    return model
