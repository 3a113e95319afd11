"""rank's default, chosen where fine-tuning orders the candidates (issue 41; the rule pre-registered
in benchmarks/real/README.md, "rank's default, chosen where fine-tuning orders the candidates").

Two scopes of source pairs on one target: ``pretrained-vs-random`` (a pretrained source against a
random init, any architectures) and ``across-architectures`` (two pretrained sources of different
architectures). A ranker's share in a scope is the share of its pairs ordered as mean fine-tuned AP
orders them (a score tie, :func:`~transferdet.ties.tied`, or an AP tie counting half), averaged over
background RoIs off and on; intervals come from the bootstrap replicates every benchmark table uses
(:func:`~transferdet.bench.bootstrap.replicates`: targets, then trials, resampled). A candidate
qualifies where the lower bound is above 0.5 in both scopes; the rule picks by the worse scope.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from transferdet.bench.bootstrap import Evidence, Interval, interval, mean_ap, replicates
from transferdet.bench.shelf_rule import MARGIN, RULE_FEATURES, RULE_LAYERS, RULE_METRICS
from transferdet.ties import tied

SCOPES = ("pretrained-vs-random", "across-architectures")
CANDIDATE_METRICS = (*RULE_METRICS, "knn", "linear_probe")
BASELINES = ("model_size", "imagenet_top1")  # shown beside the candidates; the card is not card-free
Pairs = dict[str, list[tuple[str, str]]]  # scope -> (model, model) pairs


@dataclass(frozen=True)
class Ranker:
    metric: str
    layer: str
    shares: dict[str, Interval]  # scope -> share averaged over background settings, with its interval

    @property
    def qualifies(self) -> bool:
        return all(s.low > 0.5 for s in self.shares.values())

    @property
    def worse(self) -> Interval:
        return min(self.shares.values(), key=lambda s: s.value)


def scope_pairs(arch_of: dict[str, str], random: set[str]) -> Pairs:
    """The two scopes' pairs among ``arch_of``'s models (``random``: the random inits)."""
    pretrained = [m for m in arch_of if m not in random]
    return {
        "pretrained-vs-random": [(a, b) for a in pretrained for b in arch_of if b in random],
        "across-architectures": [(a, b) for a, b in itertools.combinations(pretrained, 2) if arch_of[a] != arch_of[b]],
    }


def _score_signs(by_model: dict[str, float], pairs: list[tuple[str, str]]) -> np.ndarray:
    """+1, -1, 0 (a tie) per pair, NaN where a model has no score."""
    out = np.full(len(pairs), np.nan)
    for i, (a, b) in enumerate(pairs):
        if a in by_model and b in by_model:
            out[i] = 0.0 if tied(by_model[a], by_model[b]) else np.sign(by_model[a] - by_model[b])
    return out


def _measure(evidence: Evidence, pairs: Pairs):  # noqa: ANN202 - a bootstrap Measure
    keys = list(evidence.scores)
    signs = {(t, s): np.array([_score_signs(evidence.scores[k].get(t, {}), pairs[s]) for k in keys])
             for t in evidence.trials for s in pairs}  # fmt: skip

    def measure(_: Evidence, targets: Sequence[str], ap: dict[str, dict[str, float]]) -> dict:
        found = {}
        for scope, scope_pairs_ in pairs.items():
            right, count = np.zeros(len(keys)), np.zeros(len(keys))
            for target in targets:
                truth = np.array(
                    [np.sign(ap[target].get(a, np.nan) - ap[target].get(b, np.nan)) for a, b in scope_pairs_]
                )
                both = signs[(target, scope)]
                valid = np.isfinite(both) & np.isfinite(truth)
                half = (both == 0) | (truth == 0)
                right += np.where(valid, np.where(half, 0.5, (both * truth > 0).astype(float)), 0.0).sum(axis=1)
                count += valid.sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                found[scope] = dict(zip(keys, right / count, strict=True))
        return {key: {scope: found[scope][key] for scope in pairs} for key in keys}

    return measure


def _averaged(values: dict, metric: str, layer: str, scope: str) -> float:
    """A ranker's share in ``scope`` averaged over the background settings (NaN if one is missing)."""
    shares = [values.get((metric, layer, f), {}).get(scope, np.nan) for f in RULE_FEATURES]
    return float(np.mean(shares))


def on_replicates(evidence: Evidence, pairs: Pairs, count: int = 1000, seed: int = 0) -> tuple[dict, list[dict]]:
    """Every score's shares in each scope as measured, and on ``count`` bootstrap replicates."""
    measure = _measure(evidence, pairs)
    return measure(evidence, sorted(evidence.trials), mean_ap(evidence)), replicates(evidence, count, seed, measure)


def rankers(shares: tuple[dict, list[dict]], level: float = 0.9) -> list[Ranker]:
    """Every candidate (in the rule's order) with its two shares and their intervals."""
    measured, draws = shares
    found = []
    for layer, metric in itertools.product(RULE_LAYERS, CANDIDATE_METRICS):
        intervals = {}
        for scope in SCOPES:
            value = _averaged(measured, metric, layer, scope)
            intervals[scope] = interval(value, np.array([_averaged(d, metric, layer, scope) for d in draws]), level)
        if all(np.isfinite(s.value) for s in intervals.values()):
            found.append(Ranker(metric, layer, intervals))
    return found


def paired_gain(
    shares: tuple[dict, list[dict]], one: tuple[str, str], other: tuple[str, str], level: float = 0.9
) -> dict[str, Interval]:
    """``one`` ranker's share minus ``other``'s (metric, layer), per scope and in each one's worse
    scope (``worse``), on the same replicates."""
    measured, draws = shares

    def gains(values: dict) -> dict[str, float]:
        a, b = ({s: _averaged(values, *r, s) for s in SCOPES} for r in (one, other))
        return {**{s: a[s] - b[s] for s in SCOPES}, "worse": min(a.values()) - min(b.values())}

    drawn = [gains(d) for d in draws]
    return {k: interval(v, np.array([d[k] for d in drawn]), level) for k, v in gains(measured).items()}


def rule_winner(candidates: list[Ranker]) -> tuple[Ranker | None, bool]:
    """The pre-registered pick and whether it qualified (False: none did, and the same criterion
    ran over every candidate)."""
    qualified = [c for c in candidates if c.qualifies]
    pool = qualified or candidates
    if not pool:
        return None, False
    best = max(c.worse.value for c in pool)
    near = [c for c in pool if c.worse.value >= best - MARGIN]
    top = max(c.worse.low for c in near)
    return next(c for c in near if tied(c.worse.low, top)), bool(qualified)


def baselines(shares: tuple[dict, list[dict]], level: float = 0.9) -> list[Ranker]:
    """The baselines' shares on the same replicates (no background setting: scored once)."""
    measured, draws = shares
    found = []
    for metric in BASELINES:
        key = next((k for k in measured if k[0] == metric), None)
        if key is not None:
            intervals = {s: interval(measured[key][s], np.array([d[key][s] for d in draws]), level) for s in SCOPES}
            found.append(Ranker(metric, "-", intervals))
    return found


def counted_pairs(evidence: Evidence, pairs: Pairs) -> dict[str, int]:
    """Each scope's pairs over the targets, where both sources were fine-tuned there."""
    fine_tuned = evidence.trials
    return {scope: sum(1 for t in fine_tuned for a, b in members if a in fine_tuned[t] and b in fine_tuned[t])
            for scope, members in pairs.items()}  # fmt: skip
