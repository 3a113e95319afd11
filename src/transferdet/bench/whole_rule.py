"""Question 2 of the whole-transfer measurement (benchmarks/real/README.md, issue 43, pre-registered on
2026-12-06 before any whole fine-tune ran): which ranker orders whole-detector sources within one
architecture?

The shelf's criterion and tie-break (:mod:`~transferdet.bench.shelf_rule`): the within-architecture
``pair_share`` (:mod:`~transferdet.bench.within`) averaged over background RoIs off and on; within
:data:`~transferdet.bench.shelf_rule.MARGIN` of the best, the higher mean group tau-b; then the
earlier candidate, taps in :data:`WHOLE_RULE_LAYERS` order (the five body taps, then the
detector's own, as TMOD and Det-LogME read a detector: Wang et al., WACV 2024). Every interval comes
from one set of bootstrap replicates (targets, then trials, resampled), so a candidate's gain over
the best baseline (k-NN or the linear probe on any tap) is paired. The winner becomes rank's
recommendation for whole sources only if its share's interval lies above 0.5 and its gain's above 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from transferdet.bench.bootstrap import Evidence, Interval, interval, mean_ap, replicates
from transferdet.bench.shelf_rule import RULE_FEATURES, RULE_METRICS, Candidate, rule_winner
from transferdet.bench.within import within_groups, within_measures
from transferdet.bench.within_summary import WITHIN_BASELINES, noise_ceiling, noise_ceiling_pairs

WHOLE_RULE_LAYERS = ("c4", "c5", "c4/wm64", "c5/wm64", "pyramid/wm32", "fpn_ms", "cls_tower")


@dataclass(frozen=True)
class Scored:
    """One ranker (metric on a tap), its figures averaged over the background settings."""

    metric: str
    layer: str
    share: Interval
    tau: float
    gain: Interval | None  # in share over the best baseline, paired on the replicates (None for a baseline)


@dataclass(frozen=True)
class WholeRanking:
    rankers: list[Scored]  # the candidates, in the rule's order
    baselines: list[Scored]
    winner: Scored | None
    qualifies: bool
    ceiling: dict[str, Interval]  # trial 0 as a ranker of trial 1 (pair_share, group_tau)
    pairs: int  # the within-architecture pairs the noise ceiling compares


def _measures(found: Evidence, targets: Sequence[str], ap: dict, arch_of: dict[str, str]) -> dict:
    return {key: within_measures(within_groups(found.scores[key], ap, targets, arch_of)) for key in found.scores}


def _averaged(values: dict, metric: str, layer: str, name: str) -> float:
    """``name`` averaged over the background settings; NaN where a setting is missing."""
    found = [values.get((metric, layer, features), {}).get(name, np.nan) for features in RULE_FEATURES]
    return float(np.mean(found))


def _series(measured: dict, draws: list[dict], metric: str, layer: str) -> tuple[float, np.ndarray]:
    draws_of = np.array([_averaged(d, metric, layer, "pair_share") for d in draws])
    return _averaged(measured, metric, layer, "pair_share"), draws_of


def _scored(
    measured: dict, draws: list[dict], pairs: list[tuple[str, str]], best: tuple | None, level: float
) -> list[Scored]:
    out = []
    base = _series(measured, draws, *best) if best is not None else None  # once, not per ranker
    for metric, layer in pairs:
        value, series = _series(measured, draws, metric, layer)
        if not np.isfinite(value):
            continue
        gain = None
        if base is not None and metric not in WITHIN_BASELINES:
            gain = interval(value - base[0], series - base[1], level)
        tau = _averaged(measured, metric, layer, "group_tau")
        out.append(Scored(metric, layer, interval(value, series, level), tau, gain))
    return out


def whole_ranking(
    found: Evidence, arch_of: dict[str, str], count: int = 1000, seed: int = 0, level: float = 0.9
) -> WholeRanking:
    """The rule applied to ``found`` (whole sources' scores, their whole fine-tunes' trial AP50)."""
    measured = _measures(found, sorted(found.trials), mean_ap(found), arch_of)
    draws = replicates(found, count, seed, lambda e, t, a: _measures(e, t, a, arch_of))
    base_pairs = [(m, layer) for layer in WHOLE_RULE_LAYERS for m in WITHIN_BASELINES]
    baselines = _scored(measured, draws, base_pairs, None, level)
    best = max(baselines, key=lambda b: b.share.value, default=None)
    pairs = [(m, layer) for layer in WHOLE_RULE_LAYERS for m in RULE_METRICS]
    rankers = _scored(measured, draws, pairs, (best.metric, best.layer) if best else None, level)
    candidates = [Candidate(r.metric, r.layer, r.share.value, r.tau, ()) for r in rankers if np.isfinite(r.tau)]
    picked = rule_winner(candidates)
    winner = next((r for r in rankers if picked and (r.metric, r.layer) == (picked.metric, picked.layer)), None)
    qualifies = bool(winner and winner.share.low > 0.5 and winner.gain is not None and winner.gain.low > 0)
    ceiling = noise_ceiling(found, arch_of, count, seed, level)
    return WholeRanking(rankers, baselines, winner, qualifies, ceiling, noise_ceiling_pairs(found, arch_of))
