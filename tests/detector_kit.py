"""What tests of a detector's taps compute by hand: an image as the detector's body reads it, and
the FPN level a box is assigned (Lin et al., FPN, eq. 1: k = floor(4 + log2(sqrt(wh) / 224)))."""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image
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
