"""torchvision detectors over any :class:`~transferdet.models.backbone.Backbone`.

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

from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch
from torch import nn
from torchvision.models.detection import FCOS, FasterRCNN, MaskRCNN, RetinaNet
from torchvision.models.detection.anchor_utils import AnchorGenerator, DefaultBoxGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
from torchvision.models.detection.rpn import RPNHead
from torchvision.models.detection.ssd import SSD, SSDHead
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.ops import FrozenBatchNorm2d, MultiScaleRoIAlign

from transferdet.errors import TransferdetError
from transferdet.models.anchors import RETINANET_OCTAVES, AnchorSpec, default_anchors, ssd_scales
from transferdet.models.backbone import Backbone
from transferdet.models.detector_parts import FeaturePyramid, SimplePyramid, SingleMap, SSDFeatures, StageBoxHead
from transferdet.models.detector_transfer import class_layout
from transferdet.models.native_detectors import build_native
from transferdet.models.norms import apply_norm_policy, freeze_stages

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
    fpn_norm: str | None = None  # norm in the FPN (None: torchvision's, none)
    freeze_at: int = 0
    anchors: AnchorSpec | None = None
    ssd_scales: list[float] | None = None
    box_score_thresh: float = 0.05
    detections_per_image: int = 100
    extra: dict = field(default_factory=dict)  # more keyword arguments for the torchvision model
    test_size: int | None = None  # short side at evaluation; None: the last of ``min_size``
    frozen_bn_eps: float | None = (
        None  # FrozenBatchNorm's eps where the weights need another (torchvision's v1 COCO: 0)
    )
    builder: str | None = None  # a torchvision builder used as it builds it (native_detectors.py)

    def to_record(self) -> dict[str, Any]:
        """A JSON-able record of this config (what :meth:`from_record` reads back)."""
        record = asdict(self)
        record["min_size"] = [self.min_size] if isinstance(self.min_size, int) else list(self.min_size)
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> DetectorConfig:
        """The config of a record; keys it does not know are ignored (a run's manifest adds
        ``classes``, from which ``num_classes`` follows where the record lacks it)."""
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in record.items() if k in names}
        values.setdefault("num_classes", len(record.get("classes", [])))
        values["min_size"] = tuple(values.get("min_size", (800,)))
        anchors = values.get("anchors")
        if anchors is not None:
            values["anchors"] = AnchorSpec(tuple(anchors["sizes"]), tuple(anchors["ratios"]))
        return cls(**values)


def _fpn_levels(body: Backbone, wanted: tuple[str, ...]) -> list[str]:
    if len(body.feature_names) == 1:  # a plain backbone: the simple pyramid makes every level
        return list(wanted)
    levels = [lv for lv in wanted if lv in body.channels]
    if len(levels) < 2:
        raise TransferdetError(f"backbone gives {', '.join(body.feature_names)}: not enough maps for an FPN")
    return levels


def _pyramid(body: Backbone, levels: list[str], config: DetectorConfig, extra: str) -> nn.Module:
    """An FPN over the body's levels, or ViTDet's simple pyramid over a plain body's single map."""
    if len(body.feature_names) == 1:
        return SimplePyramid(body, levels, config.fpn_channels, extra)
    return FeaturePyramid(body, levels, config.fpn_channels, extra, config.fpn_norm)


def _anchor_generator(anchors: AnchorSpec, maps: int, octaves: tuple[float, ...] = (1.0,)) -> AnchorGenerator:
    if len(anchors.sizes) != maps:
        anchors = AnchorSpec(tuple(anchors.sizes[0] * 2**i for i in range(maps)), anchors.ratios)
    return AnchorGenerator(anchors.per_level(octaves), anchors.ratios_per_level())


def _common(body: Backbone, config: DetectorConfig) -> dict:
    return {
        "min_size": config.min_size,
        "max_size": config.max_size,
        "image_mean": list(body.mean),
        "image_std": list(body.std),
        **config.extra,
    }


def _rcnn_fpn(body: Backbone, config: DetectorConfig) -> nn.Module:
    levels = _fpn_levels(body, ("c2", "c3", "c4", "c5"))
    backbone = _pyramid(body, levels, config, "pool")
    kwargs = {
        "rpn_anchor_generator": _anchor_generator(config.anchors or default_anchors(), len(levels) + 1),
        "box_roi_pool": MultiScaleRoIAlign(levels, 7, 2),
        "box_score_thresh": config.box_score_thresh,
        "box_detections_per_img": config.detections_per_image,
        **_common(body, config),
    }
    if config.kind == "mask_rcnn_fpn":
        return MaskRCNN(backbone, config.num_classes + 1, mask_roi_pool=MultiScaleRoIAlign(levels, 14, 2), **kwargs)
    return FasterRCNN(backbone, config.num_classes + 1, **kwargs)


def _rcnn_c4(body: Backbone, config: DetectorConfig) -> nn.Module:
    if "c4" not in body.channels or "c5" not in body.channels:
        raise TransferdetError("faster_rcnn_c4 needs a backbone with c4 and c5 maps")
    head = StageBoxHead(body)
    spec = config.anchors or default_anchors()
    generator = AnchorGenerator((tuple(spec.sizes),), (tuple(spec.ratios),))  # the whole ladder on one map
    return FasterRCNN(
        SingleMap(body, "c4"),
        rpn_anchor_generator=generator,
        rpn_head=RPNHead(body.channels["c4"], generator.num_anchors_per_location()[0]),
        box_roi_pool=MultiScaleRoIAlign(["c4"], 14, 2),
        box_head=head,
        box_predictor=FastRCNNPredictor(head.out_channels, config.num_classes + 1),
        box_score_thresh=config.box_score_thresh,
        box_detections_per_img=config.detections_per_image,
        **_common(body, config),
    )


def _retinanet(body: Backbone, config: DetectorConfig) -> nn.Module:
    levels = _fpn_levels(body, ("c3", "c4", "c5"))
    backbone = _pyramid(body, levels, config, "p6p7")
    maps = len(levels) + 2  # with P6 and P7: five from c3 (fewer where the body starts deeper, as LeViT's c4)
    spec = config.anchors or AnchorSpec(tuple(4.0 * 2 ** int(levels[0][1:]) * 2**i for i in range(maps)))
    return RetinaNet(
        backbone,
        config.num_classes,
        anchor_generator=_anchor_generator(spec, maps, RETINANET_OCTAVES),
        score_thresh=config.box_score_thresh,
        detections_per_img=config.detections_per_image,
        **_common(body, config),
    )


def _fcos(body: Backbone, config: DetectorConfig) -> nn.Module:
    levels = _fpn_levels(body, ("c3", "c4", "c5"))
    backbone = _pyramid(body, levels, config, "p6p7")
    strides = [2 ** int(levels[0][1:]) * 2**i for i in range(len(levels) + 2)]  # the levels, P6 and P7
    generator = AnchorGenerator(tuple((float(s),) for s in strides), ((1.0,),) * len(strides))
    model = FCOS(
        backbone,
        config.num_classes,
        anchor_generator=generator,
        score_thresh=config.box_score_thresh,
        detections_per_img=config.detections_per_image,
        **_common(body, config),
    )
    # torchvision's FCOS passes its box distances through a ReLU and starts their bias at 0:
    # with some seeds the first updates push every output below 0 and the regression never
    # recovers (GIoU loss stuck at 1.0, AP 0). Start the distances at one anchor size.
    torch.nn.init.constant_(model.head.regression_head.bbox_reg.bias, 1.0)
    return model


def _ssd(body: Backbone, config: DetectorConfig) -> nn.Module:
    features = SSDFeatures(body)
    size = config.min_size if isinstance(config.min_size, int) else max(config.min_size)
    maps = len(features.out_channels)
    generator = DefaultBoxGenerator([[2]] * maps, scales=config.ssd_scales or ssd_scales([], size, maps))
    head = SSDHead(features.out_channels, generator.num_anchors_per_location(), config.num_classes + 1)
    return SSD(
        features,
        generator,
        (size, size),
        config.num_classes + 1,
        image_mean=list(body.mean),
        image_std=list(body.std),
        head=head,
        **config.extra,
        score_thresh=config.box_score_thresh,
        detections_per_img=config.detections_per_image,
    )


FAMILIES = {
    "faster_rcnn_fpn": _rcnn_fpn,
    "mask_rcnn_fpn": _rcnn_fpn,
    "faster_rcnn_c4": _rcnn_c4,
    "retinanet": _retinanet,
    "fcos": _fcos,
    "ssd": _ssd,
}


class TestSizeTransform(GeneralizedRCNNTransform):
    """torchvision's resize-and-normalise step, resizing to ``test_size`` in eval mode (torchvision
    itself tests at the last of its training sizes)."""

    def __init__(self, base: GeneralizedRCNNTransform, test_size: int) -> None:
        super().__init__(
            base.min_size,
            base.max_size,
            base.image_mean,
            base.image_std,
            base.size_divisible,
            base.fixed_size,
            _skip_resize=base._skip_resize,
        )
        self.train_sizes, self.test_size = tuple(base.min_size), test_size

    def train(self, mode: bool = True) -> TestSizeTransform:
        super().train(mode)
        self.min_size = self.train_sizes if mode else (self.test_size,)
        return self


def _native(config: DetectorConfig) -> nn.Module:
    """torchvision's own detector of ``config.builder`` (its body, neck and heads)."""
    if config.kind == "ssd":  # one fixed input size, the builder's
        options = {"score_thresh": config.box_score_thresh, "detections_per_img": config.detections_per_image}
    else:
        rcnn = "rcnn" in config.kind
        names = ("box_score_thresh", "box_detections_per_img") if rcnn else ("score_thresh", "detections_per_img")
        options = {"min_size": config.min_size, "max_size": config.max_size}
        options.update(zip(names, (config.box_score_thresh, config.detections_per_image), strict=True))
    classes = config.num_classes + (1 if config.kind in SOFTMAX_DETECTORS else 0)
    return build_native(config.builder, classes, {**options, **config.extra}, config.norm, config.freeze_at)


def build_detector(body: Backbone | None, config: DetectorConfig) -> nn.Module:
    """A torchvision detector of ``config.kind`` over ``body``, norm policy and frozen stages
    applied to the backbone; or, where ``config.builder`` names one, torchvision's own detector of
    that builder (``body`` unused). The model gets ``label_offset`` (see the module docstring)."""
    if config.kind not in DETECTORS:
        raise TransferdetError(f"unknown detector {config.kind!r} (choose from {', '.join(DETECTORS)})")
    if config.num_classes < 1:
        raise TransferdetError("a detector needs at least one class")
    if config.builder is not None:
        model = _native(config)
    else:
        apply_norm_policy(body, config.norm)
        freeze_stages(body, config.freeze_at)
        model = FAMILIES[config.kind](body, config)
    if config.frozen_bn_eps is not None:
        for module in model.modules():
            if isinstance(module, FrozenBatchNorm2d):
                module.eps = config.frozen_bn_eps
    if config.test_size is not None and config.kind != "ssd":  # SSD works at one fixed size
        model.transform = TestSizeTransform(model.transform, config.test_size)
    model.label_offset = 1 if config.kind in SOFTMAX_DETECTORS else 0
    model.detector_kind = config.kind
    model.class_layout = class_layout(config.kind, config.builder)
    model.detector_config = config
    return model
