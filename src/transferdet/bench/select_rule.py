"""A benchmark of ``transferdet select`` itself (its ``select`` section): on each target, a race over
that target's sources at each budget and seed, each race one bench job of kind ``select`` in this
benchmark's own store. Each pick's regret is read against the fine-tunes of every source in the
``reference`` benchmark's store (the benchmark whose sources these are)::

    extends: shelf.yaml          # the sources, targets and protocol (a config in the same folder)
    select:
      reference: shelf           # the folder of that benchmark's store, relative to this file
      budgets: [0.3]             # fractions of fine-tuning every source in full
      seeds: [0, 1]              # two races per target and budget, for the bootstrap
      race: tolerant             # the race that knows its noise (default: halving), with its
      tolerance: 0.0             # --tolerance and --prefer
      prefer: card
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class SelectRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reference: Path  # the folder of the store whose fine-tunes give each pick's regret
    targets: list[str] | None = None  # dataset names (default: every dataset)
    budgets: list[float] = Field(default_factory=lambda: [0.3], min_length=1)
    seeds: list[int] = Field(default_factory=lambda: [0, 1], min_length=1)
    eta: int = Field(3, ge=2)
    folder: Path = Path("races")  # the races' run folders, relative to the benchmark's output folder
    race: Literal["halving", "tolerant"] = "halving"
    tolerance: float = Field(0.0, ge=0)
    prefer: Literal["card", "speed", "size"] = "card"
