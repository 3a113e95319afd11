"""The whole-transfer measurement's pre-registered analysis (benchmarks/real/README.md, issue 43):
paired gains of a whole-detector fine-tune over the same source's body-only fine-tune and over its
architecture's ImageNet checkpoint, with a hierarchical bootstrap; the within-architecture noise
ceiling of whole sources; and how fast whole transfer reaches the body-only run's final AP.

Pure functions of rows: fine-tune results as ``{"dataset", "model", "trial", "transfer", key: value}``
(``transfer`` "whole" or None; ``key`` AP50, AP, and the learning curve's ``AP50@50`` ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from transferdet.bench.bootstrap import Interval, interval

CURVE = (50, 100, 150)


@dataclass(frozen=True)
class Pair:
    """One (source, target, trial): the whole fine-tune's value and what it is compared with."""

    dataset: str
    source: str
    trial: int
    whole: float
    other: float

    @property
    def gain(self) -> float:
        return self.whole - self.other


def _index(rows: Sequence[dict], key: str) -> dict[tuple, float]:
    return {(r["dataset"], r["model"], r["trial"], r["transfer"]): r[key] for r in rows if r.get(key) is not None}


def paired(rows: Sequence[dict], key: str, parent: dict[str, str] | None = None) -> list[Pair]:
    """Whole against body-only of the same source (``parent`` None), or against the source's
    ImageNet parent (``parent``: source -> the parent model), same target and trial."""
    values = _index(rows, key)
    pairs = []
    for (dataset, model, trial, transfer), whole in sorted(values.items(), key=lambda item: str(item[0])):
        if transfer != "whole":
            continue
        other = values.get((dataset, parent[model] if parent else model, trial, None))
        if other is not None:
            pairs.append(Pair(dataset, model, trial, whole, other))
    return pairs


def hierarchical_mean(pairs: Sequence[Pair], draws: int = 2000, seed: int = 0, level: float = 0.9) -> Interval:
    """The mean gain with a bootstrap interval that resamples targets, then sources within each
    drawn target, then trials within each drawn source (the design's three levels of noise)."""
    tree: dict[str, dict[str, list[float]]] = {}
    for pair in pairs:
        tree.setdefault(pair.dataset, {}).setdefault(pair.source, []).append(pair.gain)
    value = float(np.mean([p.gain for p in pairs]))
    rng = np.random.default_rng(seed)
    targets = sorted(tree)
    means = np.empty(draws)
    for draw in range(draws):
        gains: list[float] = []
        for target in rng.choice(targets, size=len(targets)):
            sources = sorted(tree[target])
            for source in rng.choice(sources, size=len(sources)):
                trials = tree[target][source]
                gains.extend(rng.choice(trials, size=len(trials)))
        means[draw] = np.mean(gains)
    return interval(value, means, level)


def reach_iteration(rows: Sequence[dict], final: int = 200) -> dict[tuple, int | None]:
    """Per (target, source, trial): the first of the curve's iterations (and ``final``) at which the
    whole run's test AP50 reaches the body-only run's final AP50; None where it never does."""
    body = _index(rows, "AP50")
    out: dict[tuple, int | None] = {}
    for row in rows:
        if row["transfer"] != "whole" or (row["dataset"], row["model"], row["trial"], None) not in body:
            continue
        goal = body[(row["dataset"], row["model"], row["trial"], None)]
        points = [(step, row.get(f"AP50@{step}")) for step in CURVE] + [(final, row.get("AP50"))]
        reached = [step for step, value in points if value is not None and value >= goal]
        out[(row["dataset"], row["model"], row["trial"])] = reached[0] if reached else None
    return out


def noise_ceiling(rows: Sequence[dict], architecture: dict[str, str], key: str = "AP50") -> tuple[float, int]:
    """The share of within-architecture pairs of whole sources (per target) that trial 0 orders as
    trial 1 does (a tie on either side counts half), and the number of pairs."""
    values = _index(rows, key)
    groups: dict[tuple[str, str], list[str]] = {}
    for dataset, model, trial, transfer in values:
        if transfer == "whole" and trial == 0 and (dataset, model, 1, "whole") in values:
            groups.setdefault((dataset, architecture[model]), []).append(model)
    agree, count = 0.0, 0
    for (dataset, _), models in sorted(groups.items()):
        for a, b in combinations(sorted(models), 2):
            first = np.sign(values[(dataset, a, 0, "whole")] - values[(dataset, b, 0, "whole")])
            second = np.sign(values[(dataset, a, 1, "whole")] - values[(dataset, b, 1, "whole")])
            agree += 0.5 if first == 0 or second == 0 else float(first == second)
            count += 1
    return (agree / count if count else float("nan")), count
