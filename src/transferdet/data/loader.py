"""One call from a path to a dataset ready to use: read, split if needed, apply the bad-box policy."""

from __future__ import annotations

from pathlib import Path

from transferdet.data import formats
from transferdet.data.dataset import DetectionDataset
from transferdet.data.formats.base import ReadOptions
from transferdet.data.split import apply_split_file, ensure_split
from transferdet.data.validation import BadBoxPolicy, apply_bad_box_policy


def load_dataset(
    path: str | Path,
    format: str = "auto",
    options: ReadOptions | None = None,
    on_bad_box: BadBoxPolicy = "drop",
    seed: int = 0,
    split_file: Path | None = None,
) -> DetectionDataset:
    """Read ``path``, give it splits (a split file, the data's own, or a seeded 80/20 train/test),
    and apply the bad-box policy."""
    dataset = formats.read(path, format, options)
    dataset = apply_split_file(dataset, split_file) if split_file else ensure_split(dataset, seed)
    return apply_bad_box_policy(dataset, on_bad_box)
