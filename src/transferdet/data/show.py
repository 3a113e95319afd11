"""A picture of a dataset: a grid of images with boxes, class names and shaded masks."""

from __future__ import annotations

import colorsys
import io
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as F
from torchvision.utils import draw_bounding_boxes, draw_segmentation_masks, make_grid

from transferdet.atomic import atomic_write_bytes
from transferdet.data.dataset import DetectionDataset, ImageRecord
from transferdet.data.masks import record_masks
from transferdet.errors import TransferdetError


def class_colors(count: int) -> list[tuple[int, int, int]]:
    """``count`` distinct saturated colours, evenly spaced in hue."""
    return [
        tuple(int(255 * c) for c in colorsys.hsv_to_rgb(i / max(count, 1), 0.9, 1.0))  # type: ignore[misc]
        for i in range(count)
    ]


def draw_record(record: ImageRecord, classes: list[str], tile: int) -> torch.Tensor:
    """The record's image letterboxed into ``tile`` px with its annotations drawn, uint8 (3, T, T)."""
    with Image.open(record.path) as image:
        pixels = F.pil_to_tensor(image.convert("RGB"))
    height, width = pixels.shape[-2:]
    scale = tile / max(height, width)
    size = [max(1, round(height * scale)), max(1, round(width * scale))]
    pixels = F.resize(pixels, size, antialias=True)
    colors = class_colors(len(classes))
    known = record.labels >= 0
    masks = record_masks(record)
    if masks is not None and masks.any():
        mask_tensor = F.resize(torch.from_numpy(masks[known]), size, interpolation=F.InterpolationMode.NEAREST)
        mask_colors = [colors[label] for label in record.labels[known]]
        if len(mask_colors):
            pixels = draw_segmentation_masks(pixels, mask_tensor, alpha=0.45, colors=mask_colors)
    if known.any():
        boxes = torch.from_numpy(record.boxes[known] * scale).float()
        names = [classes[label] for label in record.labels[known]]
        box_colors = [colors[label] for label in record.labels[known]]
        pixels = draw_bounding_boxes(pixels, boxes, labels=names, colors=box_colors, width=1)
    canvas = torch.zeros((3, tile, tile), dtype=torch.uint8)
    canvas[:, : size[0], : size[1]] = pixels
    return canvas


def render_grid(
    dataset: DetectionDataset, split: str | None = None, count: int = 16, seed: int = 0, tile: int = 256
) -> Image.Image:
    """Up to ``count`` images of ``split`` (chosen with ``seed``) in a square grid."""
    records = dataset.records(split)
    if not records:
        raise TransferdetError("no images to show")
    chosen = np.random.default_rng(seed).choice(len(records), size=min(count, len(records)), replace=False)
    tiles = [draw_record(records[i], dataset.classes, tile) for i in sorted(chosen)]
    grid = make_grid(torch.stack(tiles), nrow=math.ceil(math.sqrt(len(tiles))), padding=4, pad_value=64)
    return F.to_pil_image(grid)


def save_grid(image: Image.Image, out: Path) -> None:
    """Save atomically: a failed write leaves no half-written picture."""
    buffer = io.BytesIO()
    image.save(buffer, format=(out.suffix.lstrip(".") or "png").upper().replace("JPG", "JPEG"))
    atomic_write_bytes(out, buffer.getvalue())
