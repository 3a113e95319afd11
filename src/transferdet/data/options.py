"""How a command reads a dataset, as its data options said (``transferdet.cli.data_options`` defines
the options once for every command): the format, the split, where the files are, the bad-box policy
and the seed of a split made for data without one."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from transferdet.data.dataset import DetectionDataset
from transferdet.data.formats.base import ReadOptions


@dataclass(frozen=True)
class DataArgs:
    """What the data options said: the format, the split, how to read, the bad-box policy, the split seed."""

    format: str = "auto"
    split: str | None = None
    read: ReadOptions = ReadOptions()
    on_bad_box: str = "drop"
    split_seed: int | None = None

    def seed(self, fallback: int = 0) -> int:
        """The seed that draws the splits: ``--split-seed``, else the command's ``--seed`` (``fallback``)."""
        return fallback if self.split_seed is None else self.split_seed

    def load(self, path: Path, seed: int = 0) -> DetectionDataset:
        """The dataset as read, split where it has none, the bad-box policy applied."""
        from transferdet.data.loader import load_dataset

        return load_dataset(path, self.format, self.read, self.on_bad_box, seed=self.seed(seed))
