"""How good select's picks are: the regret of a pick, and of the static picks it is compared with.

A pick's regret on a target is the best source's mean test AP minus the picked source's, both from
the reference benchmark's own fine-tunings of every source (the mean over its trials). A pick that
ties (a static score equal for several sources, as the card's top-1 is within one architecture)
counts as the mean regret over the tied sources; a random pick's is the mean over all sources.
Select's validation protocol is that of the successive-halving literature (Jamieson & Talwalkar,
AISTATS 2016; Li et al., "Hyperband", JMLR 2017): regret of the configuration returned, against the
resources spent.

Intervals are percentile bootstrap intervals (Efron & Tibshirani 1993, ch. 13) over what the
benchmark could have drawn differently: the targets (with replacement), per target its races'
seeds (with replacement) and its fine-tuning trials (with replacement, for every source's mean AP).
Every picker's regret is computed on the same replicates, so the difference between select and a
static pick has a paired interval. Pure functions of the races' picks and the trials' APs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from transferdet.bench.bootstrap import Interval, interval

RACE = "select"
RANDOM = "random"


def regret(picked: Sequence[str], ap: Mapping[str, float]) -> float:
    """The best mean AP minus the mean over the picked (tied) sources' mean APs."""
    return max(ap.values()) - float(np.mean([ap[p] for p in picked]))


def top_ties(scores: Mapping[str, float | None]) -> list[str]:
    """The sources a static score picks: every one sharing the highest score (all of them where
    none has a score: no better than a random pick)."""
    finite = {m: s for m, s in scores.items() if s is not None and math.isfinite(s)}
    if not finite:
        return list(scores)
    best = max(finite.values())
    return [m for m, s in finite.items() if s == best]


@dataclass(frozen=True)
class RaceOutcome:
    """One race (a target, a seed, a budget): its measured cost as a fraction of fine-tuning every
    source in full, and what each picker picked (the race, the static scores, random: all)."""

    target: str
    seed: int
    budget: float
    cost: float
    picks: dict[str, list[str]]


@dataclass(frozen=True)
class RegretRow:
    """One picker at one budget: its mean regret with interval, and the race's paired difference
    from it (race minus picker; below zero: the race picks better) with interval."""

    budget: float
    picker: str
    races: int
    cost: float  # the races' mean cost (the static picks cost one forward pass each, not counted)
    regret: Interval
    race_minus_this: Interval | None  # None for the race itself


def _regret_of(units: list[RaceOutcome], picker: str, ap: Mapping[str, Mapping[str, float]]) -> float:
    return float(np.mean([regret(u.picks[picker], ap[u.target]) for u in units]))


def _draw(units: list[RaceOutcome], trials: Mapping[str, Mapping[str, np.ndarray]], rng: np.random.Generator):
    """One replicate: races (targets, then each drawn target's seeds, with replacement) and each
    drawn target's sources' mean AP over resampled trials."""
    by_target: dict[str, list[RaceOutcome]] = {}
    for unit in units:
        by_target.setdefault(unit.target, []).append(unit)
    names = sorted(by_target)
    drawn = [names[i] for i in rng.integers(0, len(names), len(names))]
    ap = {
        t: {m: float(a[rng.integers(0, len(a), len(a))].mean()) for m, a in trials[t].items()}
        for t in dict.fromkeys(drawn)
    }
    races = [by_target[t][i] for t in drawn for i in rng.integers(0, len(by_target[t]), len(by_target[t]))]
    return races, ap


def regret_rows(
    outcomes: list[RaceOutcome], trials: Mapping[str, Mapping[str, np.ndarray]], count: int = 1000, seed: int = 0,
    level: float = 0.9,
) -> list[RegretRow]:  # fmt: skip
    """Per budget, every picker's mean regret and the race's paired difference from it."""
    rows = []
    measured_ap = {t: {m: float(np.mean(a)) for m, a in by.items()} for t, by in trials.items()}
    for budget in sorted({o.budget for o in outcomes}):
        units = [o for o in outcomes if o.budget == budget]
        pickers = list(units[0].picks)
        rng = np.random.default_rng(seed)
        draws = [_draw(units, trials, rng) for _ in range(count)]
        values = {p: np.array([_regret_of(races, p, ap) for races, ap in draws]) for p in pickers}
        cost = float(np.mean([u.cost for u in units]))
        for picker in pickers:
            measured = _regret_of(units, picker, measured_ap)
            difference = None
            if picker != RACE:
                gap = _regret_of(units, RACE, measured_ap) - measured
                difference = interval(gap, values[RACE] - values[picker], level)
            rows.append(RegretRow(budget, picker, len(units), cost, interval(measured, values[picker], level),
                                  difference))  # fmt: skip
    return rows
