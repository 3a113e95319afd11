"""Anchor sizes and aspect ratios: the usual defaults, or derived from the training boxes.

torchvision's defaults (32-512 px boxes on FPN levels P2-P6) were set for COCO images resized to
800 px; on small images (e.g. 15-50 px glyphs on a 128 px canvas) most objects then overlap no
anchor well and never become positives. ``auto`` starts the anchor ladder at the 2nd percentile of
the boxes' sizes (sqrt of area, in the detector's input pixels) and takes the aspect ratios from
the 10th, 50th and 90th percentiles of their height/width.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from transferdet.data.dataset import ImageRecord

RETINANET_OCTAVES = (1.0, 2 ** (1 / 3), 2 ** (2 / 3))


@dataclass(frozen=True)
class AnchorSpec:
    """Base size of each level (doubling from level to level) and the aspect ratios (h / w)."""

    sizes: tuple[float, ...]
    ratios: tuple[float, ...] = (0.5, 1.0, 2.0)

    def per_level(self, octaves: tuple[float, ...] = (1.0,)) -> tuple[tuple[float, ...], ...]:
        return tuple(tuple(round(size * o, 2) for o in octaves) for size in self.sizes)

    def ratios_per_level(self) -> tuple[tuple[float, ...], ...]:
        return (tuple(self.ratios),) * len(self.sizes)


def default_anchors(levels: int = 5) -> AnchorSpec:
    return AnchorSpec(tuple(32.0 * 2**i for i in range(levels)))


def resized_box_shapes(records: list[ImageRecord], min_size: int, max_size: int) -> np.ndarray:
    """Box (width, height) in the detector's input pixels, after its shorter-side resize."""
    shapes = []
    for record in records:
        if record.num_boxes == 0 or record.width <= 0 or record.height <= 0:
            continue
        short, long = min(record.width, record.height), max(record.width, record.height)
        scale = min(min_size / short, max_size / long)
        wh = (record.boxes[:, 2:] - record.boxes[:, :2]) * scale
        shapes.append(wh[(wh > 0).all(axis=1)])
    return np.concatenate(shapes) if shapes else np.zeros((0, 2))


def auto_anchors(shapes: np.ndarray, levels: int = 5) -> AnchorSpec:
    """Anchors for boxes of ``shapes`` (N x 2 widths and heights): a doubling ladder of ``levels``
    sizes from the 2nd percentile of sqrt(area), and three aspect ratios from the data."""
    if len(shapes) == 0:
        return default_anchors(levels)
    size = np.sqrt(shapes[:, 0] * shapes[:, 1])
    smallest = max(float(np.percentile(size, 2)), 4.0)
    ratio = np.clip(shapes[:, 1] / shapes[:, 0], 0.2, 5.0)
    quantiles = np.percentile(ratio, [10, 50, 90])
    ratios = tuple(sorted({round(float(q), 2) for q in quantiles}))
    return AnchorSpec(tuple(round(smallest * 2**i, 2) for i in range(levels)), ratios)


def ssd_scales(shapes: np.ndarray, image_size: int, maps: int) -> list[float]:
    """SSD default-box scales (``maps + 1`` values, fractions of the image) spanning the boxes."""
    if len(shapes) == 0:
        return list(np.linspace(0.15, 0.9, maps + 1))
    size = np.sqrt(shapes[:, 0] * shapes[:, 1]) / image_size
    low = max(float(np.percentile(size, 2)), 0.02)
    high = max(float(np.percentile(size, 98)) * 1.2, low * 2)
    return list(np.geomspace(low, high, maps + 1))
