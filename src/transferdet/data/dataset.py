"""The one in-memory detection dataset type every format reads into and writes from.

Boxes are absolute ``x1, y1, x2, y2`` pixels, exactly as annotated (bad boxes included, so that
validation can count them); labels are contiguous ids into ``classes``, with ``UNKNOWN_LABEL`` for
an annotation whose class the file does not declare. Masks, where a format has them, are kept as
COCO segmentations (polygon lists or RLE dicts) and decoded on demand.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

UNKNOWN_LABEL = -1

Segmentation = list[list[float]] | dict[str, Any]
SPLIT_ORDER = ("train", "trainval", "val", "valid", "validation", "test")


def split_sort_key(name: str) -> tuple[int, str]:
    """Train first, then validation, then test, then any other split by name."""
    return (SPLIT_ORDER.index(name) if name in SPLIT_ORDER else len(SPLIT_ORDER), name)


@dataclass
class ImageRecord:
    """One image and its annotations.

    ``width``/``height`` are 0 when the file could not be read and the format does not store them;
    ``image_problem`` is then ``"missing_image"`` or ``"unreadable_image"``. ``difficult`` (VOC's
    ``<difficult>``) and ``crowd`` (COCO's ``iscrowd``) flag boxes that evaluation neither rewards nor
    penalises; None means no box is flagged.
    """

    image_id: int | str
    file_name: str
    path: Path
    width: int
    height: int
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), dtype=np.float64))
    labels: np.ndarray = field(default_factory=lambda: np.zeros((0,), dtype=np.int64))
    masks: list[Segmentation | None] | None = None
    image_problem: str | None = None
    probed: bool = False
    declared_size: tuple[int, int] | None = None  # (width, height) the annotations stated, when the file differs
    difficult: np.ndarray | None = None  # bool per box
    crowd: np.ndarray | None = None  # bool per box

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4)
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        if len(self.boxes) != len(self.labels):
            raise ValueError(f"{self.file_name}: {len(self.boxes)} boxes but {len(self.labels)} labels")
        for name in ("difficult", "crowd"):
            flags = getattr(self, name)
            if flags is not None:
                flags = np.asarray(flags, dtype=bool).reshape(-1)
                if len(flags) != len(self.boxes):
                    raise ValueError(f"{self.file_name}: {len(self.boxes)} boxes but {len(flags)} {name} flags")
                setattr(self, name, flags if flags.any() else None)
        if self.masks is not None and len(self.masks) != len(self.boxes):
            raise ValueError(f"{self.file_name}: {len(self.boxes)} boxes but {len(self.masks)} masks")

    @property
    def num_boxes(self) -> int:
        return int(len(self.boxes))

    def subset(self, keep: np.ndarray) -> ImageRecord:
        """A copy holding only the annotations where ``keep`` (bool mask or indices) selects."""
        index = np.flatnonzero(keep) if np.asarray(keep).dtype == bool else np.asarray(keep)
        masks = None if self.masks is None else [self.masks[i] for i in index]
        flags = {n: None if getattr(self, n) is None else getattr(self, n)[index] for n in ("difficult", "crowd")}
        return replace(self, boxes=self.boxes[index], labels=self.labels[index], masks=masks, **flags)

    def flags(self, name: str) -> np.ndarray:
        """``difficult`` or ``crowd`` as a bool per box (all False where none is flagged)."""
        flags = getattr(self, name)
        return np.zeros(len(self.boxes), dtype=bool) if flags is None else flags

    @property
    def ignored(self) -> np.ndarray:
        """Boxes evaluation ignores: difficult or crowd."""
        return self.flags("difficult") | self.flags("crowd")


@dataclass
class DetectionDataset:
    """Images with boxes, labels and optional masks, grouped in named splits.

    ``read_problems`` holds, per split, the problems only a reader can see (duplicate ids);
    validation adds the ones it can count from the records. ``split_origin`` says where the
    splits came from: ``"file"``, or a description of the seeded split made for a dataset that
    had none.
    """

    classes: list[str]
    splits: dict[str, list[ImageRecord]]
    source_format: str
    root: Path | None = None
    read_problems: dict[str, Counter] = field(default_factory=dict)
    split_origin: str = "file"

    def __post_init__(self) -> None:
        self.splits = {name: self.splits[name] for name in sorted(self.splits, key=split_sort_key)}

    @property
    def has_masks(self) -> bool:
        return any(r.masks is not None for records in self.splits.values() for r in records)

    @property
    def split_names(self) -> list[str]:
        return list(self.splits)

    def records(self, split: str | None = None) -> list[ImageRecord]:
        """Records of one split, of several joined with ``+`` (``train+val``), or of all splits."""
        if split is None:
            return [r for records in self.splits.values() for r in records]
        if split in self.splits:
            return list(self.splits[split])
        out: list[ImageRecord] = []
        for name in split.split("+"):
            if name not in self.splits:
                known = ", ".join(self.splits) or "none"
                raise KeyError(f"no split {name!r} (splits: {known})")
            out.extend(self.splits[name])
        return out

    def num_boxes(self, split: str | None = None) -> int:
        return sum(r.num_boxes for r in self.records(split))

    def boxes_per_class(self, split: str | None = None) -> dict[str, int]:
        counts = np.zeros(len(self.classes), dtype=np.int64)
        for record in self.records(split):
            known = record.labels[record.labels >= 0]
            counts += np.bincount(known, minlength=len(self.classes))
        return {name: int(n) for name, n in zip(self.classes, counts, strict=True)}

    def with_splits(self, splits: dict[str, list[ImageRecord]], **changes: Any) -> DetectionDataset:
        return replace(self, splits=splits, **changes)

    def select(self, split: str) -> DetectionDataset:
        """A dataset holding only ``split`` (which may join several with ``+``)."""
        return self.with_splits({split: self.records(split)})
