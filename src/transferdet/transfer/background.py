"""Background RoIs as an extra class, for ranking on single-class data (DESIGN.md).

The TMOD paper scores ground-truth boxes only, so class-separability metrics have nothing to
separate on data with one kind of object, while a detector must still tell objects from
background. Per image, a fixed number of boxes is drawn under the seed: a ground-truth box's
relative width and height (drawn from the whole set's, so background boxes have the objects'
size distribution), placed uniformly inside the image, kept when its IoU with every ground-truth
box of the image is below 0.3. They are labelled as one extra class, ``background``.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from transferdet.data.dataset import ImageRecord

BACKGROUND = "background"
MAX_IOU = 0.3
ATTEMPTS = 50  # draws per wanted box before giving up on it (a crowded image may have fewer)


def default_background(classes: list[str], asked: int | None) -> int:
    """Boxes per image: as asked; by default 2 for single-class data, none otherwise."""
    if asked is not None:
        return asked
    return 2 if len(classes) == 1 else 0


def _iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    x1, y1 = np.maximum(box[0], others[:, 0]), np.maximum(box[1], others[:, 1])
    x2, y2 = np.minimum(box[2], others[:, 2]), np.minimum(box[3], others[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-12)


def _relative_sizes(records: list[ImageRecord]) -> np.ndarray:
    """(w / image width, h / image height) of every ground-truth box."""
    sizes = [
        np.stack([(r.boxes[:, 2] - r.boxes[:, 0]) / r.width, (r.boxes[:, 3] - r.boxes[:, 1]) / r.height], axis=1)
        for r in records
        if r.num_boxes and r.width > 0 and r.height > 0
    ]
    return np.clip(np.concatenate(sizes), 1e-3, 1.0) if sizes else np.zeros((0, 2))


def sample_background(record: ImageRecord, count: int, sizes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Up to ``count`` background boxes (x1, y1, x2, y2) in ``record``'s pixels."""
    found: list[np.ndarray] = []
    for _ in range(count * ATTEMPTS):
        if len(found) == count or len(sizes) == 0:
            break
        w, h = sizes[rng.integers(len(sizes))] * (record.width, record.height)
        x, y = rng.uniform(0, record.width - w), rng.uniform(0, record.height - h)
        box = np.array([x, y, x + w, y + h])
        if record.num_boxes == 0 or _iou(box, record.boxes).max() < MAX_IOU:
            found.append(box)
    return np.array(found, dtype=np.float64).reshape(-1, 4)


def with_background(records: list[ImageRecord], count: int, label: int, seed: int) -> list[ImageRecord]:
    """``records`` with ``count`` background boxes each, labelled ``label`` (seeded per image)."""
    if count <= 0:
        return records
    sizes = _relative_sizes(records)
    out = []
    for index, record in enumerate(records):
        extra = sample_background(record, count, sizes, np.random.default_rng([seed, 7, index]))
        labels = np.concatenate([record.labels, np.full(len(extra), label, dtype=np.int64)])
        grown = {n: np.concatenate([record.flags(n), np.zeros(len(extra), bool)]) for n in ("difficult", "crowd")}
        out.append(replace(record, boxes=np.concatenate([record.boxes, extra]), labels=labels, masks=None, **grown))
    return out
