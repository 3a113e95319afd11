"""MNIST-like synthetic detection data (the recipe of DESIGN.md).

A black square canvas holds 1-5 glyphs of side 15-49 px (for a 128 px canvas; scaled with the
canvas size), each placed so that its box overlaps every earlier box with IoU below 0.25, its box
tightened to the glyph's pixels and its instance mask the glyph's pixels. Optional Gaussian noise
and clutter (unannotated glyph fragments) make it harder. Image ``i`` is drawn from a generator
seeded with ``(seed, i)``, so a dataset is deterministic under its seed and images can be made in
any order.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from transferdet.data import formats
from transferdet.data.dataset import DetectionDataset, ImageRecord
from transferdet.data.formats.base import WriteOptions
from transferdet.data.glyphs import GlyphSource, glyph_source
from transferdet.data.split import seeded_split
from transferdet.errors import TransferdetError

MASK_THRESHOLD = 0.2
MAX_IOU = 0.25
BASE_CANVAS = 128
BASE_SIDES = (15, 49)


@dataclass(frozen=True)
class SynthConfig:
    """What to draw: ``images`` canvases of ``size`` px from glyph ``source``."""

    source: str = "digits"
    images: int = 400
    size: int = BASE_CANVAS
    seed: int = 0
    test_fraction: float = 0.2
    max_objects: int = 5
    noise: float = 0.0
    clutter: int = 0
    num_classes: int | None = None


@dataclass
class SyntheticImage:
    pixels: np.ndarray  # (H, W, 3) uint8
    boxes: np.ndarray  # (N, 4) float64, x1y1x2y2
    labels: np.ndarray  # (N,) int64
    masks: list[np.ndarray]  # N bool arrays (H, W)


def box_iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    if len(others) == 0:
        return np.zeros(0)
    x1 = np.maximum(box[0], others[:, 0])
    y1 = np.maximum(box[1], others[:, 1])
    x2 = np.minimum(box[2], others[:, 2])
    y2 = np.minimum(box[3], others[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    return inter / (area + areas - inter)


def render_image(source: GlyphSource, config: SynthConfig, index: int) -> SyntheticImage:
    """Image ``index`` of the dataset described by ``config``."""
    rng = np.random.default_rng([config.seed, index])
    size = config.size
    scale = size / BASE_CANVAS
    low, high = (max(4, round(s * scale)) for s in BASE_SIDES)
    num_classes = config.num_classes or len(source.classes)
    canvas = np.zeros((size, size), dtype=np.float32)
    boxes: list[np.ndarray] = []
    labels: list[int] = []
    masks: list[np.ndarray] = []
    wanted = int(rng.integers(1, config.max_objects + 1))
    for _ in range(wanted):
        for _attempt in range(30):
            label = int(rng.integers(num_classes))
            glyph = source.draw(rng, label, int(rng.integers(low, high + 1)))
            h, w = glyph.shape
            if h > size or w > size:
                continue
            y0, x0 = int(rng.integers(0, size - h + 1)), int(rng.integers(0, size - w + 1))
            ink = glyph > MASK_THRESHOLD
            if not ink.any():
                continue
            ys, xs = np.nonzero(ink)
            box = np.array([x0 + xs.min(), y0 + ys.min(), x0 + xs.max() + 1, y0 + ys.max() + 1], dtype=np.float64)
            if len(boxes) and box_iou(box, np.stack(boxes)).max() >= MAX_IOU:
                continue
            intensity = float(rng.uniform(0.6, 1.0))
            region = canvas[y0 : y0 + h, x0 : x0 + w]
            np.maximum(region, glyph * intensity, out=region)
            mask = np.zeros((size, size), dtype=bool)
            mask[y0 : y0 + h, x0 : x0 + w] = ink
            boxes.append(box)
            labels.append(label)
            masks.append(mask)
            break
    for _ in range(config.clutter):
        fragment = source.draw(rng, int(rng.integers(num_classes)), int(rng.integers(low, high + 1)))
        h, w = fragment.shape
        ch, cw = max(2, h // 3), max(2, w // 3)
        fy, fx = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        piece = fragment[fy : fy + ch, fx : fx + cw] * float(rng.uniform(0.3, 0.7))
        y0, x0 = int(rng.integers(0, size - ch + 1)), int(rng.integers(0, size - cw + 1))
        region = canvas[y0 : y0 + ch, x0 : x0 + cw]
        np.maximum(region, piece, out=region)
    if config.noise > 0:
        canvas = canvas + rng.normal(0.0, config.noise, canvas.shape).astype(np.float32)
    gray = (np.clip(canvas, 0.0, 1.0) * 255).round().astype(np.uint8)
    return SyntheticImage(
        pixels=np.repeat(gray[:, :, None], 3, axis=2),
        boxes=np.array(boxes, dtype=np.float64).reshape(-1, 4),
        labels=np.array(labels, dtype=np.int64),
        masks=masks,
    )


def encode_mask(mask: np.ndarray) -> dict:
    """A binary mask as COCO RLE with a JSON-ready ``counts`` string."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def synthesize(
    config: SynthConfig,
    destination: Path,
    format: str = "coco",
    overwrite: bool = False,
    progress: object | None = None,
) -> DetectionDataset:
    """Draw the dataset and write it to ``destination`` in ``format`` (atomically).

    ``progress``, if given, is called with the number of images drawn so far.
    """
    if config.images < 1:
        raise TransferdetError("--images must be at least 1")
    if not 0.0 <= config.test_fraction < 1.0:
        raise TransferdetError("--test-fraction must be in [0, 1)")
    source = glyph_source(config.source)
    if config.num_classes is not None and not 1 <= config.num_classes <= len(source.classes):
        raise TransferdetError(f"--classes must be between 1 and {len(source.classes)} for {config.source}")
    classes = list(source.classes[: config.num_classes or len(source.classes)])
    destination.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".synth-", dir=destination.parent))
    try:
        records = []
        for index in range(config.images):
            image = render_image(source, config, index)
            file_name = f"{index:06d}.png"
            path = scratch / file_name
            Image.fromarray(image.pixels).save(path)
            records.append(
                ImageRecord(
                    image_id=index,
                    file_name=file_name,
                    path=path,
                    width=config.size,
                    height=config.size,
                    boxes=image.boxes,
                    labels=image.labels,
                    masks=[encode_mask(m) for m in image.masks],
                )
            )
            if progress is not None:
                progress(index + 1)
        fractions = {"train": 1.0 - config.test_fraction, "test": config.test_fraction}
        splits = seeded_split(records, fractions, config.seed) if config.test_fraction > 0 else {"train": records}
        for split_records in splits.values():
            split_records.sort(key=lambda r: r.file_name)
        dataset = DetectionDataset(classes, splits, "synthetic", destination, split_origin="file")
        formats.write(dataset, destination, format, WriteOptions(image_mode="link"), overwrite=overwrite)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return formats.read(destination, format)
