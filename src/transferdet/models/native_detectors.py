"""torchvision detection builders whose structure transferdet's families do not reproduce, built as
torchvision builds them: the v2 heads (Li et al., "Benchmarking Detection Transfer Learning with
Vision Transformers", 2021: BN in the FPN and heads, a 4-conv box head, a 2-conv RPN, GroupNorm in
RetinaNet's heads and P6 from C5), Faster R-CNN over MobileNetV3 (an FPN on its last two stride-32
maps), SSD300 over VGG16 (Liu et al., "SSD: Single Shot MultiBox Detector", ECCV 2016) and SSDlite320
over MobileNetV3 (Howard et al., "Searching for MobileNetV3", ICCV 2019: the reduced tail, BN eps
0.001). Each keeps its builder's body, neck, anchors and input normalisation; the recipe gives the
training sizes (not SSD's fixed input), the norm policy of the body and its frozen stages."""

from __future__ import annotations

import torch
from torch import nn

from transferdet.models.norms import apply_norm_policy

# builder -> (transferdet family its heads follow, score threshold, detections per image, min size, max size),
# torchvision's own defaults for its COCO weights
NATIVE: dict[str, tuple[str, float, int, int, int]] = {
    "fasterrcnn_resnet50_fpn_v2": ("faster_rcnn_fpn", 0.05, 100, 800, 1333),
    "maskrcnn_resnet50_fpn_v2": ("mask_rcnn_fpn", 0.05, 100, 800, 1333),
    "retinanet_resnet50_fpn_v2": ("retinanet", 0.05, 300, 800, 1333),
    "fasterrcnn_mobilenet_v3_large_fpn": ("faster_rcnn_fpn", 0.05, 100, 800, 1333),
    "fasterrcnn_mobilenet_v3_large_320_fpn": ("faster_rcnn_fpn", 0.05, 100, 320, 640),
    "ssd300_vgg16": ("ssd", 0.01, 200, 300, 300),
    "ssdlite320_mobilenet_v3_large": ("ssd", 0.001, 300, 320, 320),
}


def native_body(model: nn.Module) -> nn.Module:
    """The body inside a torchvision detector: the FPN's trunk, or SSD's feature layers."""
    backbone = model.backbone
    return backbone.body if hasattr(backbone, "body") else backbone.features


def build_native(builder: str, num_classes: int, options: dict, norm: str, freeze_at: int) -> nn.Module:
    """torchvision's ``builder`` with ``num_classes`` (background included where it has one) and
    ``options`` (sizes, score threshold, detections), random weights; the body's norms under
    ``norm`` and its leading modules frozen up to stride ``2 ** freeze_at``. The body records the
    input normalisation the builder uses (``mean``, ``std``), as transferdet's bodies do."""
    import torchvision

    model = torchvision.models.get_model(builder, weights=None, weights_backbone=None, num_classes=num_classes,
                                         **options)  # fmt: skip
    body = apply_norm_policy(native_body(model), norm)
    _freeze_leading(body, freeze_at)
    body.mean, body.std = tuple(model.transform.image_mean), tuple(model.transform.image_std)
    return model


def _freeze_leading(body: nn.Module, freeze_at: int) -> list[str]:
    """Freeze the body's children, in order, while their output's stride stays within ``2 ** freeze_at``
    (strides measured on a 128 px input). Returns the names frozen."""
    if freeze_at <= 0:
        return []
    training, frozen = body.training, []
    x = torch.zeros(1, 3, 128, 128)
    body.eval()
    with torch.no_grad():
        for name, child in body.named_children():
            x = child(x)
            if 128 // x.shape[-1] > 2**freeze_at:
                break
            child.requires_grad_(False)
            frozen.append(name)
    body.train(training)
    return frozen
