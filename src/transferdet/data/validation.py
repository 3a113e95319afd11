"""Counting what is wrong with a dataset, and the bad-box policy that decides what to do about it.

Counts are made on the data as annotated (before any policy), per split:

- ``zero_area``: a box with zero or negative width or height (or a non-finite coordinate);
- ``out_of_bounds``: a box reaching more than ``BOUNDS_TOLERANCE`` pixels outside its image;
- ``unknown_class``: an annotation whose class the dataset does not declare;
- ``missing_image`` / ``unreadable_image``: the image file is absent, or Pillow cannot read it;
- ``empty_image``: an image without any annotation (legitimate background, but worth knowing);
- ``duplicate_id``: an image or annotation id used twice (counted by the reader);
- ``size_mismatch``: the annotations state another image size than the file has (boxes are then
  checked against the file's size; a stated 0 x 0 means the format states none).
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from transferdet.data.dataset import UNKNOWN_LABEL, DetectionDataset, ImageRecord
from transferdet.data.images import probe
from transferdet.errors import DataError

PROBLEM_KEYS = (
    "zero_area",
    "out_of_bounds",
    "unknown_class",
    "missing_image",
    "unreadable_image",
    "empty_image",
    "duplicate_id",
    "size_mismatch",
)
BOUNDS_TOLERANCE = 1.0

BadBoxPolicy = Literal["drop", "clip", "error", "keep"]
BAD_BOX_POLICIES: tuple[str, ...] = ("drop", "clip", "error", "keep")


class DataWarning(UserWarning):
    """Something in the data was dropped or fixed; the message counts it."""


def zero_area_mask(boxes: np.ndarray) -> np.ndarray:
    finite = np.isfinite(boxes).all(axis=1)
    with np.errstate(invalid="ignore"):
        positive = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return ~(finite & positive)


def out_of_bounds_mask(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Boxes reaching outside the image by more than the tolerance (unknown size: none)."""
    if width <= 0 or height <= 0 or len(boxes) == 0:
        return np.zeros(len(boxes), dtype=bool)
    t = BOUNDS_TOLERANCE
    with np.errstate(invalid="ignore"):
        return (boxes[:, 0] < -t) | (boxes[:, 1] < -t) | (boxes[:, 2] > width + t) | (boxes[:, 3] > height + t)


@dataclass(frozen=True)
class BoxFlags:
    """Per-box problems of one image (a zero-area box is not also counted out of bounds)."""

    zero_area: np.ndarray
    out_of_bounds: np.ndarray
    unknown_class: np.ndarray

    @classmethod
    def of(cls, record: ImageRecord) -> BoxFlags:
        zero = zero_area_mask(record.boxes)
        outside = out_of_bounds_mask(record.boxes, record.width, record.height) & ~zero
        return cls(zero, outside, record.labels == UNKNOWN_LABEL)


def count_problems(dataset: DetectionDataset, check_images: bool = True) -> dict[str, dict[str, int]]:
    """Problem counts per split, on the data as annotated. ``check_images`` opens each image's
    header to find missing and unreadable files."""
    result: dict[str, dict[str, int]] = {}
    for split, records in dataset.splits.items():
        counts: Counter = Counter({key: 0 for key in PROBLEM_KEYS})
        counts.update(dataset.read_problems.get(split, Counter()))
        for record in records:
            if check_images:
                probe(record)
            if record.image_problem:
                counts[record.image_problem] += 1
            if record.declared_size is not None:
                counts["size_mismatch"] += 1
            if record.num_boxes == 0:
                counts["empty_image"] += 1
                continue
            if record.image_problem and (record.width <= 0 or record.height <= 0):
                continue  # boxes cannot be checked against an image of unknown size
            flags = BoxFlags.of(record)
            counts["zero_area"] += int(flags.zero_area.sum())
            counts["out_of_bounds"] += int(flags.out_of_bounds.sum())
            counts["unknown_class"] += int(flags.unknown_class.sum())
        result[split] = {key: int(counts[key]) for key in PROBLEM_KEYS}
    return result


def classes_without_boxes(dataset: DetectionDataset, split: str | None = None) -> list[str]:
    return [name for name, n in dataset.boxes_per_class(split).items() if n == 0]


def _clip(record: ImageRecord) -> np.ndarray:
    boxes = record.boxes.copy()
    if record.width > 0 and record.height > 0:
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, record.width)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, record.height)
    return boxes


def apply_bad_box_policy(
    dataset: DetectionDataset, policy: BadBoxPolicy = "drop", check_images: bool = True
) -> DetectionDataset:
    """Return a dataset a model can train on, following ``policy``.

    ``drop`` removes zero-area, out-of-bounds and unknown-class boxes and images that are missing
    or unreadable, with one warning that counts them; ``clip`` clips out-of-bounds boxes to the
    image first and drops only what is still bad; ``error`` raises on the first bad box naming its
    file; ``keep`` changes nothing (for converting data as annotated).
    """
    if policy not in BAD_BOX_POLICIES:
        raise ValueError(f"unknown bad-box policy {policy!r} (choose from {BAD_BOX_POLICIES})")
    if policy == "keep":
        return dataset
    dropped: Counter = Counter()
    clipped = 0
    splits: dict[str, list[ImageRecord]] = {}
    for split, records in dataset.splits.items():
        kept_records: list[ImageRecord] = []
        for record in records:
            if check_images:
                probe(record)
            if record.image_problem:
                if policy == "error":
                    raise DataError(record.path, record.image_problem.replace("_", " "))
                dropped[record.image_problem] += 1
                continue
            flags = BoxFlags.of(record)
            if policy == "error":
                for name in ("zero_area", "out_of_bounds", "unknown_class"):
                    bad = np.flatnonzero(getattr(flags, name))
                    if len(bad):
                        box = ", ".join(f"{v:g}" for v in record.boxes[bad[0]])
                        raise DataError(
                            record.path,
                            f"{name.replace('_', ' ')} box [{box}] "
                            f"(image {record.width}x{record.height}); --on-bad-box drop|clip skips it",
                            where=f"image {record.image_id!r}",
                        )
                kept_records.append(record)
                continue
            if policy == "clip" and flags.out_of_bounds.any():
                clipped += int(flags.out_of_bounds.sum())
                record = replace(record, boxes=_clip(record))
                flags = BoxFlags.of(record)
            bad = flags.zero_area | flags.out_of_bounds | flags.unknown_class
            for name in ("zero_area", "out_of_bounds", "unknown_class"):
                dropped[name] += int(getattr(flags, name).sum())
            kept_records.append(record.subset(~bad) if bad.any() else record)
        splits[split] = kept_records
    parts = [f"{n} {name.replace('_', ' ')}" for name, n in dropped.items() if n]
    if parts or clipped:
        message = []
        if clipped:
            message.append(f"clipped {clipped} out-of-bounds box(es) to their image")
        if parts:
            message.append("dropped " + ", ".join(parts) + " (--on-bad-box to change)")
        warnings.warn("; ".join(message), DataWarning, stacklevel=2)
    return dataset.with_splits(splits)
