"""detectron2's ResNet naming (``stem.conv1``, ``res2..res5``, ``convN.norm``, ``shortcut``) to and
from torchvision/timm's, and export of a ResNet's weights to detectron2's ``.pkl`` layout (as MoCo's
``convert-pretrain-to-detectron2.py`` writes it: BGR 0-255 input flagged for detectron2)."""

from __future__ import annotations

import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from transferdet.errors import TransferdetError
from transferdet.models.checkpoints import BOOKKEEPING, Checkpoint

_D2_BLOCK = re.compile(r"^res(\d)\.(\d+)\.(conv\d|shortcut)(\.norm)?\.(.+)$")
_TV_BLOCK = re.compile(r"^layer(\d)\.(\d+)\.(conv\d|bn\d|downsample\.0|downsample\.1)\.(.+)$")


def detectron2_to_resnet(name: str) -> str | None:
    """detectron2 ResNet key -> torchvision/timm ResNet key (None for keys without a counterpart)."""
    if name.startswith("stem.conv1.norm."):
        return "bn1." + name[len("stem.conv1.norm.") :]
    if name.startswith("stem.conv1."):
        return "conv1." + name[len("stem.conv1.") :]
    match = _D2_BLOCK.match(name)
    if match is None:
        return None
    stage, block, layer, norm, leaf = match.groups()
    prefix = f"layer{int(stage) - 1}.{block}."
    if layer == "shortcut":
        return prefix + ("downsample.1." if norm else "downsample.0.") + leaf
    return prefix + (f"bn{layer[-1]}." if norm else f"{layer}.") + leaf


def resnet_to_detectron2(name: str) -> str | None:
    """torchvision/timm ResNet key -> detectron2 key (None for the classifier and bookkeeping)."""
    if name.endswith(BOOKKEEPING) or name.startswith("fc."):
        return None
    if name.startswith("conv1."):
        return "stem.conv1." + name[len("conv1.") :]
    if name.startswith("bn1."):
        return "stem.conv1.norm." + name[len("bn1.") :]
    match = _TV_BLOCK.match(name)
    if match is None:
        return None
    stage, block, layer, leaf = match.groups()
    prefix = f"res{int(stage) + 1}.{block}."
    if layer == "downsample.0":
        return prefix + "shortcut." + leaf
    if layer == "downsample.1":
        return prefix + "shortcut.norm." + leaf
    if layer.startswith("bn"):
        return prefix + f"conv{layer[-1]}.norm." + leaf
    return prefix + f"{layer}.{leaf}"


DETECTRON2_RGB_AUTHORS = ("transferdet", "MOCO", "DenseCL", "PyContrast")
IMAGENET_STD_255 = (58.395, 57.12, 57.375)


def detectron2_input_is_bgr255(notes: Mapping[str, Any]) -> bool:
    """Whether a detectron2 checkpoint expects BGR 0-255 input with unit std (MSRA's C2 weights)."""
    if "input_format" in notes:
        return str(notes["input_format"]).upper() == "BGR"
    return str(notes.get("__author__", "")) not in DETECTRON2_RGB_AUTHORS


def bgr255_conv_to_rgb(weight: torch.Tensor, std: tuple[float, float, float] = (0.229, 0.224, 0.225)) -> torch.Tensor:
    """First-conv weights for BGR 0-255 mean-subtracted input, rewritten for RGB input normalised
    with ImageNet mean/std: input_bgr255 - mean255 = 255 * std * input_normalised, channel-flipped."""
    scale = torch.tensor([255.0 * s for s in std], dtype=weight.dtype).view(1, 3, 1, 1)
    return weight.flip(1) * scale


def to_resnet_names(checkpoint: Checkpoint) -> dict[str, torch.Tensor]:
    """A detectron2 checkpoint's ResNet tensors under torchvision/timm names, input converted to
    RGB/ImageNet normalisation where the file was made for BGR 0-255."""
    tensors: dict[str, torch.Tensor] = {}
    for key, value in checkpoint.tensors.items():
        for prefix in ("backbone.bottom_up.", "backbone."):
            if key.startswith(prefix):
                key = key[len(prefix) :]
        name = detectron2_to_resnet(key)
        if name is not None:
            tensors[name] = value
    if "conv1.weight" in tensors and detectron2_input_is_bgr255(checkpoint.notes):
        tensors["conv1.weight"] = bgr255_conv_to_rgb(tensors["conv1.weight"])
    return tensors


def export_detectron2(tensors: Mapping[str, torch.Tensor], path: Path) -> list[str]:
    """Write ResNet weights (torchvision/timm names) as a detectron2 ``.pkl`` that detectron2 loads
    with its name matching heuristics; the notes say it expects RGB input with ImageNet mean/std
    (``INPUT.FORMAT RGB``, ``PIXEL_STD [58.395, 57.12, 57.375]``). Returns the detectron2 keys."""
    model: dict[str, np.ndarray] = {}
    for key, value in tensors.items():
        name = resnet_to_detectron2(key)
        if name is not None:
            model[name] = value.detach().cpu().numpy()
    if not any(k.startswith("res5.") for k in model):
        raise TransferdetError("detectron2 export needs a ResNet-style backbone (conv1, bn1, layer1..layer4)")
    content = {
        "model": model,
        "__author__": "transferdet",
        "matching_heuristics": True,
        "input_format": "RGB",
        "pixel_mean": [123.675, 116.28, 103.53],
        "pixel_std": list(IMAGENET_STD_255),
    }
    from transferdet.atomic import atomic_write_bytes

    atomic_write_bytes(path, pickle.dumps(content, protocol=pickle.HIGHEST_PROTOCOL))
    return sorted(model)


# --- matching onto an architecture ---------------------------------------------------------------
