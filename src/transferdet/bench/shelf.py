"""The shelf of a benchmark: intermediate-task sources made by the benchmark itself.

A practitioner's shelf holds an ImageNet checkpoint and detectors fine-tuned from it on other data
(the TMOD paper's "Real" setting; Wang et al. 2024, "Efficient Transferability Assessment for
Selection of Pre-trained Detectors"). A config's ``shelf`` rule builds one: each ``start_from`` model is
fine-tuned as a detector on each of its ``datasets`` with the benchmark's own protocol (a ``source`` job,
seed ``config.seed``), into ``folder/<key>-<tag>``; that run's backbone is then a source for every
target **except the dataset it was trained on** (leave one out). The rule, not a hand-made list,
decides which source meets which target::

    shelf:
      start_from: {mnv2: mnv2-imagenet, lite0: lite0-imagenet}   # key: a model of `models`
      datasets: [bccd, thermal_dogs]                        # names in `datasets` (their tag names the run)
      folder: sources                                       # relative to the config file
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from transferdet.models.model_card import ModelEntry
from transferdet.models.specs import split_spec


class ShelfRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start_from: dict[str, str] = Field(min_length=1)  # short key -> name of a model in `models`
    datasets: list[str] = Field(min_length=1)  # dataset names (YAML reads a key `on` as true: not used)
    folder: Path = Path("sources")
    # how a source's fine-tunes start from it: the whole detector (the default, as detectron2, MMDetection
    # and torchvision's tutorial do) or its body only (every shelf job stored before whole transfer)
    transfer: Literal["whole", "body"] = "whole"


@dataclass(frozen=True)
class ShelfSource:
    """One intermediate-task source: the model it becomes, the model it starts from, the dataset
    it is trained on (and so never a source for) and its run folder."""

    entry: ModelEntry
    start: ModelEntry
    trained_on: str
    folder: Path


def shelf_sources(rule: ShelfRule, models: list[ModelEntry], tags: dict[str, str], base: Path) -> list[ShelfSource]:
    """The sources ``rule`` makes, datasets outer, starting models inner. A source keeps its
    starting model's card top-1 (its architecture's); its input normalisation comes from its run."""
    by_name = {m.name: m for m in models}
    unknown = [name for name in rule.start_from.values() if name not in by_name] + [
        d for d in rule.datasets if d not in tags
    ]
    if unknown:
        raise ValueError(f"shelf: unknown model or dataset name(s): {', '.join(unknown)}")
    sources = []
    for dataset in rule.datasets:
        for key, start_name in rule.start_from.items():
            start = by_name[start_name]
            name = f"{key}-{tags[dataset]}"
            folder = rule.folder if rule.folder.is_absolute() else base / rule.folder
            arch = split_spec(start.spec)[0]
            spec = f"{arch}@{folder / name}"
            entry = ModelEntry(name=name, spec=spec, imagenet_top1=start.imagenet_top1, transfer=rule.transfer)
            sources.append(ShelfSource(entry, start, dataset, folder / name))
    return sources
