"""Seeded train/test splits for datasets that come without one, and saving/loading split files."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np

from transferdet.data.dataset import DetectionDataset, ImageRecord
from transferdet.errors import DataError

DEFAULT_FRACTIONS = {"train": 0.8, "test": 0.2}
TEST_SPLITS = ("test", "val", "valid", "validation")  # the names a held-out split goes by, in preference
VALIDATION_SPLITS = ("val", "valid", "validation", "minival", "dev")
CARVED_VALIDATION = "val-carved"  # a validation split cut from the training images
VALIDATION_FRACTION = 0.1
SPLIT_WORDS = ("train", "trainval", "val", "valid", "validation", "test", "minival", "dev")


def names_a_split(name: str) -> bool:
    """``train``, ``val2017``, ``test-dev`` ... name a split; ``annotations`` or ``data`` do not."""
    return name.lower().startswith(SPLIT_WORDS)


def training_split(dataset: DetectionDataset, name: str | None = None) -> str:
    """``name``, else ``train`` where the dataset has it, else its first split."""
    return name or ("train" if "train" in dataset.splits else next(iter(dataset.splits)))


def held_out_split(dataset: DetectionDataset, name: str | None = None, besides: str | None = None) -> str | None:
    """``name``, else the first of :data:`TEST_SPLITS` the dataset has (other than ``besides``), else None."""
    return name or next((s for s in TEST_SPLITS if s in dataset.splits and s != besides), None)


def validation_split(
    dataset: DetectionDataset, train_split: str, test_split: str | None, seed: int
) -> tuple[DetectionDataset, str, str | None]:
    """``(dataset, train split, validation split)`` for evaluating during training (a plateau
    schedule steers on it), never on the split that is finally reported: the dataset's own
    validation split where it has one that is neither trained on nor reported; else a tenth of the
    training images (at least one), drawn under ``seed`` and no longer trained on, as split
    :data:`CARVED_VALIDATION`. None where the training split has fewer than two images."""
    used = {*train_split.split("+"), *(test_split or "").split("+")}
    own = next((s for s in VALIDATION_SPLITS if s in dataset.splits and s not in used), None)
    if own is not None:
        return dataset, train_split, own
    records = dataset.records(train_split)
    if len(records) < 2:
        return dataset, train_split, None
    order = np.random.default_rng(seed).permutation(len(records))
    held = set(order[: max(1, round(VALIDATION_FRACTION * len(records)))].tolist())
    splits = {name: part for name, part in dataset.splits.items() if name not in train_split.split("+")}
    kept = "train" if "+" in train_split else train_split
    splits[kept] = [r for i, r in enumerate(records) if i not in held]
    splits[CARVED_VALIDATION] = [r for i, r in enumerate(records) if i in held]
    return replace(dataset, splits=splits), kept, CARVED_VALIDATION


def seeded_split(
    records: list[ImageRecord], fractions: dict[str, float] | None = None, seed: int = 0
) -> dict[str, list[ImageRecord]]:
    """Shuffle ``records`` with ``seed`` and cut them by ``fractions`` (in order; the last split
    takes the rest). The same records and seed always give the same split."""
    fractions = fractions or DEFAULT_FRACTIONS
    if not fractions or any(f < 0 for f in fractions.values()) or sum(fractions.values()) <= 0:
        raise ValueError(f"bad split fractions {fractions}")
    total = sum(fractions.values())
    order = np.random.default_rng(seed).permutation(len(records))
    names = list(fractions)
    result: dict[str, list[ImageRecord]] = {}
    start = 0
    for i, name in enumerate(names):
        end = len(records) if i == len(names) - 1 else start + round(len(records) * fractions[name] / total)
        result[name] = [records[j] for j in order[start:end]]
        start = end
    return result


def ensure_split(
    dataset: DetectionDataset, seed: int = 0, fractions: dict[str, float] | None = None
) -> DetectionDataset:
    """The dataset itself when its files define splits; else a seeded split of all its images.
    Problems only the reader saw (duplicate ids) are kept, counted under the first split."""
    if dataset.split_origin != "none":
        return dataset
    fractions = fractions or DEFAULT_FRACTIONS
    splits = seeded_split(dataset.records(), fractions, seed)
    cut = "/".join(f"{round(100 * f / sum(fractions.values()))}" for f in fractions.values())
    origin = f"seeded {cut} {'/'.join(fractions)} split (seed {seed})"
    seen = sum(dataset.read_problems.values(), Counter())
    problems = {name: (seen if i == 0 else Counter()) for i, name in enumerate(splits)}
    return dataset.with_splits(splits, split_origin=origin, read_problems=problems)


def split_assignment(dataset: DetectionDataset) -> dict[str, list[str]]:
    """``split -> [image file names]``, the form a split is saved in."""
    return {split: [r.file_name for r in records] for split, records in dataset.splits.items()}


def save_split(dataset: DetectionDataset, path: Path) -> None:
    content = {"origin": dataset.split_origin, "splits": split_assignment(dataset)}
    path.write_text(json.dumps(content, indent=1), encoding="utf-8")


def apply_split_file(dataset: DetectionDataset, path: Path) -> DetectionDataset:
    """Re-split ``dataset`` as a file written by :func:`save_split` says."""
    from transferdet.data.formats.base import load_json

    content = load_json(path)
    by_name = {r.file_name: r for r in dataset.records()}
    splits: dict[str, list[ImageRecord]] = {}
    for split, names in content.get("splits", {}).items():
        missing = [n for n in names if n not in by_name]
        if missing:
            raise DataError(
                path, f"split {split!r} lists {len(missing)} image(s) not in the dataset, e.g. {missing[0]!r}"
            )
        splits[split] = [by_name[n] for n in names]
    return dataset.with_splits(splits, split_origin=f"split file {path}")
