"""Bootstrapped sub-datasets by class co-occurrence, the "Real 2" recipe of Fouquet, Maggio and
Dreyfus-Schmidt, "Transferability Metrics for Object Detection" (2023).

From one dataset, draw many smaller detection tasks: keep classes present in more than ``K``
images; draw a seed class uniformly; draw the other classes without replacement, weighted by the
number of images in which they co-occur with the seed class; keep the set if enough images hold one
of its classes, and split them into train and test. Boxes of classes outside the set are removed;
labels are renumbered 0..C-1.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from transferdet.atomic import atomic_directory
from transferdet.data import formats
from transferdet.data.dataset import DetectionDataset, ImageRecord
from transferdet.data.formats.base import WriteOptions
from transferdet.errors import TransferdetError


@dataclass(frozen=True)
class SubsampleConfig:
    datasets: int = 5
    classes: int = 3
    train: int = 100
    test: int = 50
    min_images: int = 10
    seed: int = 0
    max_attempts: int = 1000


def presence_matrix(records: list[ImageRecord], num_classes: int) -> np.ndarray:
    """``(images, classes)`` bool: does image ``i`` hold a box of class ``c``."""
    presence = np.zeros((len(records), num_classes), dtype=bool)
    for i, record in enumerate(records):
        labels = record.labels[record.labels >= 0]
        presence[i, labels] = True
    return presence


def draw_class_set(presence: np.ndarray, config: SubsampleConfig, rng: np.random.Generator) -> list[int] | None:
    """One class set by the co-occurrence recipe, or None if this draw cannot make one."""
    eligible = np.flatnonzero(presence.sum(axis=0) > config.min_images)
    if len(eligible) < config.classes:
        return None
    seed_class = int(rng.choice(eligible))
    others = eligible[eligible != seed_class]
    weights = (presence[:, others] & presence[:, [seed_class]]).sum(axis=0).astype(np.float64)
    if np.count_nonzero(weights) < config.classes - 1:
        return None
    chosen = rng.choice(others, size=config.classes - 1, replace=False, p=weights / weights.sum())
    return sorted([seed_class, *(int(c) for c in chosen)])


def bootstrap_subsets(dataset: DetectionDataset, config: SubsampleConfig) -> list[DetectionDataset]:
    """``config.datasets`` sub-datasets, each with a ``train`` and a ``test`` split."""
    if config.classes < 1 or config.train < 1 or config.test < 0 or config.datasets < 1:
        raise TransferdetError("--datasets, --classes and --train must be at least 1, --test at least 0")
    records = dataset.records()
    presence = presence_matrix(records, len(dataset.classes))
    rng = np.random.default_rng(config.seed)
    subsets: list[DetectionDataset] = []
    for _attempt in range(config.max_attempts):
        if len(subsets) == config.datasets:
            break
        class_set = draw_class_set(presence, config, rng)
        if class_set is None:
            continue
        holders = np.flatnonzero(presence[:, class_set].any(axis=1))
        if len(holders) < config.train + config.test:
            continue
        picked = rng.choice(holders, size=config.train + config.test, replace=False)
        remap = np.full(len(dataset.classes), -1, dtype=np.int64)
        remap[class_set] = np.arange(len(class_set))
        splits: dict[str, list[ImageRecord]] = {}
        for split, indices in (("train", picked[: config.train]), ("test", picked[config.train :])):
            kept = []
            for i in sorted(indices):
                record = records[i]
                keep = np.isin(record.labels, class_set)
                sub = record.subset(keep)
                sub.labels = remap[sub.labels]
                kept.append(sub)
            splits[split] = kept
        subsets.append(
            DetectionDataset([dataset.classes[c] for c in class_set], splits, dataset.source_format, dataset.root)
        )
    if len(subsets) < config.datasets:
        eligible = int((presence.sum(axis=0) > config.min_images).sum())
        raise TransferdetError(
            f"drew only {len(subsets)} of {config.datasets} sub-datasets in {config.max_attempts} tries: "
            f"{eligible} classes appear in more than {config.min_images} images and "
            f"{len(records)} images in all; ask for fewer classes or images, or lower --min-images"
        )
    return subsets


def write_subsets(
    subsets: list[DetectionDataset],
    destination: Path,
    config: SubsampleConfig,
    format: str = "coco",
    image_mode: str = "copy",
    overwrite: bool = False,
) -> None:
    """``destination/subset-NN/`` per sub-dataset plus ``subsets.json`` describing them all."""
    with atomic_directory(destination, overwrite) as staging:
        summary = []
        for index, subset in enumerate(subsets):
            name = f"subset-{index:02d}"
            formats.write(subset, staging / name, format, WriteOptions(image_mode=image_mode))
            summary.append(
                {
                    "name": name,
                    "classes": subset.classes,
                    "images": {s: len(r) for s, r in subset.splits.items()},
                    "boxes": {s: subset.num_boxes(s) for s in subset.splits},
                }
            )
        content = {"config": asdict(config), "subsets": summary}
        (staging / "subsets.json").write_text(json.dumps(content, indent=1), encoding="utf-8")
