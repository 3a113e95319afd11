"""Backbones from any checkpoint, and torchvision detectors over them.

The public face of the model stage::

    from transferdet.models import DetectorConfig, build_backbone, build_detector, matched_weights, parse_spec

    backbone = build_backbone("timm:resnet18@random")          # a Backbone (c1..c5 feature maps)
    detector = build_detector(backbone, DetectorConfig("fcos", num_classes=3))
"""

from transferdet.models.backbone import Backbone
from transferdet.models.backbones import build_backbone, list_architectures, matched_weights
from transferdet.models.detectors import DETECTORS, DetectorConfig, build_detector
from transferdet.models.specs import ModelSpec, parse_spec, split_spec

__all__ = [
    "DETECTORS",
    "Backbone",
    "DetectorConfig",
    "ModelSpec",
    "build_backbone",
    "build_detector",
    "list_architectures",
    "matched_weights",
    "parse_spec",
    "split_spec",
]
