"""The within-architecture figures with bootstrap intervals (the replicates of
:func:`~transferdet.bench.bootstrap.replicates`: targets and trials resampled), each score's paired
gain in ``pair_share`` over the best baseline of this scope (k-NN and the linear probe: size and
top-1 tie within an architecture), and the noise ceiling: the same figures for trial 0's AP against
trial 1's, the agreement of fine-tuning with itself, which no ranker can beat."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np

from transferdet.bench.bootstrap import Evidence, Interval, interval, mean_ap, replicates, with_gains
from transferdet.bench.within import within_groups, within_measures

WITHIN_MEASURES = ("pair_share", "group_tau")
WITHIN_BASELINES = ("knn", "linear_probe")


@dataclass(frozen=True)
class WithinSummary:
    scope: str
    metric: str
    layer: str
    features: str
    pairs: int
    measures: dict[str, Interval]
    gain: Interval | None  # in pair_share over the best baseline (None for a baseline)
    against: str | None


def _all_scores(evidence: Evidence, targets: Sequence[str], ap: dict, arch_of: dict[str, str]) -> dict:
    return {key: within_measures(within_groups(evidence.scores[key], ap, targets, arch_of)) for key in evidence.scores}


def _pairs(evidence: Evidence, key: tuple, ap: dict, arch_of: dict[str, str]) -> int:
    groups = within_groups(evidence.scores[key], ap, sorted(evidence.trials), arch_of)
    return sum(len(s) * (len(s) - 1) // 2 for s, _ in groups)


def summarise_within(
    evidence: Evidence, arch_of: dict[str, str], scope: str, count: int = 1000, seed: int = 0, level: float = 0.9
) -> list[WithinSummary]:
    """Every score's within-architecture figures, with intervals and gains."""
    if not evidence.scores or not evidence.trials:
        return []
    ap = mean_ap(evidence)
    measure = partial(_all_scores, arch_of=arch_of)
    measured = measure(evidence, sorted(evidence.trials), ap)
    draws = replicates(evidence, count, seed, measure)
    summaries = []
    for key, (intervals, gain, best) in with_gains(
        measured, draws, WITHIN_MEASURES, WITHIN_BASELINES, "pair_share", level
    ).items():
        pairs = _pairs(evidence, key, ap, arch_of)
        summaries.append(WithinSummary(scope, *key, pairs, intervals, gain, " ".join(best) if gain else None))
    return summaries


def noise_ceiling(
    evidence: Evidence, arch_of: dict[str, str], count: int = 1000, seed: int = 0, level: float = 0.9
) -> dict[str, Interval]:
    """The within-architecture figures of trial 0's AP as a ranker of trial 1's, with intervals over
    resampled targets (the trials are what is compared, so they are not resampled)."""
    names = _two_trial_targets(evidence)
    if not names:
        return {}

    def figures(targets: Sequence[str]) -> dict[str, float]:
        return within_measures(_trial_groups(evidence, targets, arch_of))

    rng = np.random.default_rng(seed)
    draws = [figures([names[i] for i in rng.integers(0, len(names), len(names))]) for _ in range(count)]
    measured = figures(names)
    return {m: interval(measured[m], np.array([d[m] for d in draws]), level) for m in WITHIN_MEASURES}


def noise_ceiling_pairs(evidence: Evidence, arch_of: dict[str, str]) -> int:
    """How many within-architecture pairs the noise ceiling compares: every pair of fine-tuned
    sources of one architecture on a target with two trials of each, scored or not."""
    return sum(len(s) * (len(s) - 1) // 2 for s, _ in _trial_groups(evidence, _two_trial_targets(evidence), arch_of))


def _two_trial_targets(evidence: Evidence) -> list[str]:
    return [d for d in sorted(evidence.trials) if all(len(t) >= 2 for t in evidence.trials[d].values())]


def _trial_groups(evidence: Evidence, targets: Sequence[str], arch_of: dict[str, str]) -> list:
    """The within-architecture groups of trial 0's AP (as the score) against trial 1's."""
    first = {d: {m: float(t[0]) for m, t in evidence.trials[d].items()} for d in targets}
    second = {d: {m: float(t[1]) for m, t in evidence.trials[d].items()} for d in targets}
    return within_groups(first, second, targets, arch_of)
