"""What tests of detectors compute by hand or share: an image as the detector's body reads it, the
FPN level a box is assigned (Lin et al., FPN, eq. 1: k = floor(4 + log2(sqrt(wh) / 224))), norms
frozen as torchvision freezes them for trained weights, two real images."""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image
from torchvision.ops import FrozenBatchNorm2d
from torchvision.transforms.v2 import functional as F


def normalised_image(path, body) -> torch.Tensor:  # noqa: ANN001 - a path and a Backbone
    """The image at ``path`` as a 1 x 3 x H x W batch, normalised with the body's mean and std."""
    mean, std = torch.tensor(body.mean).view(1, 3, 1, 1), torch.tensor(body.std).view(1, 3, 1, 1)
    with Image.open(path) as image:
        pixels = F.pil_to_tensor(image.convert("RGB")).float()[None] / 255
    return (pixels - mean) / std


def fpn_level(box: np.ndarray, lowest: int, highest: int = 5) -> int:
    side = math.sqrt((box[2] - box[0]) * (box[3] - box[1]))
    return min(highest, max(lowest, math.floor(4 + math.log2(side / 224) + 1e-6)))


def freeze_norms(module: torch.nn.Module, eps: float) -> None:
    for name, child in module.named_children():
        if isinstance(child, torch.nn.BatchNorm2d):
            frozen = FrozenBatchNorm2d(child.num_features, eps=eps)
            for key in ("weight", "bias", "running_mean", "running_var"):
                getattr(frozen, key).copy_(getattr(child, key).detach())
            setattr(module, name, frozen)
        else:
            freeze_norms(child, eps)


def bccd_images(bccd) -> list[torch.Tensor]:  # noqa: ANN001
    paths = sorted(bccd.rglob("JPEGImages/*.jpg"))[:2]
    out = []
    for path in paths:
        with Image.open(path) as image:
            out.append(F.pil_to_tensor(image.convert("RGB")).float() / 255)
    return out


def random_torchvision_detector(name: str) -> torch.nn.Module:
    """torchvision's detector ``name`` with 91 classes, random weights and BN statistics drawn (seed 0),
    the BN scales kept small so that a random 50-layer ResNet's activations stay moderate."""
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.get_model(name, weights=None, weights_backbone=None, num_classes=91)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
            module.weight.data.uniform_(0.2, 0.6)
    return model
