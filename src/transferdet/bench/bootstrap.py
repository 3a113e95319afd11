"""How sure the correlations are: bootstrap confidence intervals, and each metric's gain over the
best baseline, over all sources and over the pretrained sources only.

A replicate resamples what a benchmark could have drawn differently: the targets (datasets, with
replacement) and, per target and model, the fine-tuning trials (with replacement; the model's AP
is their mean). Every measure of every score is computed on the same replicates, so a difference
between two of them (a metric's gain over a baseline) has an interval too (a paired bootstrap).
Intervals are percentile intervals (Efron & Tibshirani, "An Introduction to the Bootstrap", 1993,
ch. 13); pooled measures are those of :mod:`~transferdet.bench.correlate`. Telling random
initialisation from ImageNet weights is easy; the pretrained-only scope asks whether a metric
also tells good pretrained models apart (the critique of "How NOT to benchmark your SITE metric",
ICLR 2026).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from transferdet.bench.correlate import standardised, top1_regret

MEASURES = ("kendall", "weighted_tau", "pearson", "top1_regret")
ScoreKey = tuple[str, str, str]  # (metric, layer, features)


@dataclass(frozen=True)
class Interval:
    value: float  # on the data as measured
    low: float  # percentile interval over the replicates (NaN where a replicate could not compute it)
    high: float


@dataclass(frozen=True)
class Summary:
    """One score's pooled measures in one scope, with intervals, and its gain in Kendall tau over
    the best baseline of that scope (None for a baseline itself)."""

    scope: str
    metric: str
    layer: str
    features: str
    targets: int
    models: int
    measures: dict[str, Interval]
    gain: Interval | None
    against: str | None  # the best baseline, "metric layer features"


@dataclass(frozen=True)
class Evidence:
    """What the bootstrap resamples: per target, each score's values by model, and each model's trial APs."""

    scores: dict[ScoreKey, dict[str, dict[str, float]]]  # key -> target -> model -> score
    trials: dict[str, dict[str, np.ndarray]]  # target -> model -> AP of each trial


def evidence(score_rows: list[dict], ap_rows: list[dict], target: str, models: set[str] | None = None) -> Evidence:
    """The scores and trial APs of ``models`` (all when None) that have both."""
    trials: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in ap_rows:
        if row["key"] == target and row["value"] is not None and (models is None or row["model"] in models):
            trials[row["dataset"]][row["model"]].append(row["value"])
    scores: dict[ScoreKey, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    for row in score_rows:
        score = row["score"]
        if score is not None and np.isfinite(score) and row["model"] in trials.get(row["dataset"], {}):
            scores[(row["metric"], row["layer"], row["features"])][row["dataset"]][row["model"]] = score
    arrays = {d: {m: np.array(v) for m, v in by_model.items()} for d, by_model in trials.items()}
    return Evidence({k: {d: dict(v) for d, v in t.items()} for k, t in scores.items()}, arrays)


def kendall_tau_b(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall's tau-b (ties corrected, as ``scipy.stats.kendalltau``) from the pairs' signs: the
    bootstrap's thousands of small samples need it without scipy's p-value machinery."""
    return tau_b_from_signs(np.sign(x[:, None] - x[None, :]), np.sign(y[:, None] - y[None, :]))


def tau_b_from_signs(dx: np.ndarray, dy: np.ndarray) -> float:
    """Kendall's tau-b from the pairwise sign matrices of the two rankings (0 where a pair ties)."""
    pairs = np.sqrt(float(np.count_nonzero(dx)) * float(np.count_nonzero(dy)))
    return float((dx * dy).sum() / pairs) if pairs > 0 else float("nan")


# scipy.stats.weightedtau without its axis and NaN-policy wrapper, whose inspect.signature calls
# took three quarters of a report's bootstrap (about 0.5 ms a call, tens of thousands of calls): the
# inputs here are 1-D float arrays without NaN, which the wrapper hands on unchanged
_WEIGHTED_TAU = getattr(stats.weightedtau, "__wrapped__", stats.weightedtau)


def pooled(parts: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    """:func:`~transferdet.bench.correlate.pooled_measures`' values of :data:`MEASURES`, without p-values."""
    scores = np.concatenate([standardised(s) for s, _ in parts])
    aps = np.concatenate([standardised(a) for _, a in parts])
    constant = np.ptp(scores) == 0 or np.ptp(aps) == 0
    nan = float("nan")
    return {
        "kendall": nan if constant else kendall_tau_b(scores, aps),
        "weighted_tau": nan if constant else float(_WEIGHTED_TAU(scores, aps).statistic),
        "pearson": nan if constant else float(np.corrcoef(scores, aps)[0, 1]),
        "top1_regret": float(np.mean([top1_regret(s, a) for s, a in parts])),
    }


def _parts(
    key: ScoreKey, evidence: Evidence, targets: Sequence[str], ap: dict[str, dict[str, float]]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(scores, APs) per drawn target, over the models with a score there (at least 2)."""
    parts = []
    for dataset in targets:
        by_model = evidence.scores[key].get(dataset, {})
        models = [m for m in by_model if m in ap[dataset]]
        if len(models) >= 2:
            parts.append((np.array([by_model[m] for m in models]), np.array([ap[dataset][m] for m in models])))
    return parts


def _measure_all(evidence: Evidence, targets: Sequence[str], ap: dict[str, dict[str, float]]) -> dict:
    values = {}
    for key in evidence.scores:
        parts = _parts(key, evidence, targets, ap)
        values[key] = pooled(parts) if parts else dict.fromkeys(MEASURES, float("nan"))
    return values


Measure = Callable[[Evidence, Sequence[str], dict[str, dict[str, float]]], dict]


def replicates(evidence: Evidence, count: int, seed: int, measure: Measure | None = None) -> list[dict]:
    """``count`` replicates' measures (key -> measure -> value), targets and trials resampled; the
    same seed draws the same replicates whatever ``measure`` computes on them."""
    rng = np.random.default_rng(seed)
    names = sorted(evidence.trials)
    results = []
    for _ in range(count):
        drawn = [names[i] for i in rng.integers(0, len(names), len(names))]
        ap = {
            d: {m: float(t[rng.integers(0, len(t), len(t))].mean()) for m, t in evidence.trials[d].items()}
            for d in dict.fromkeys(drawn)
        }
        results.append((measure or _measure_all)(evidence, drawn, ap))
    return results


def interval(value: float, draws: np.ndarray, level: float) -> Interval:
    finite = draws[np.isfinite(draws)]
    if len(finite) < 0.9 * len(draws) or not np.isfinite(value):  # too often undefined: no interval
        return Interval(value, float("nan"), float("nan"))
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return Interval(value, float(low), float(high))


def summarise(
    evidence: Evidence, scope: str, baselines: Sequence[str], count: int = 1000, seed: int = 0, level: float = 0.9
) -> list[Summary]:
    """Every score's pooled measures with ``level`` intervals, and its paired gain in Kendall tau
    over the best baseline (the baseline score with the highest pooled tau on the data)."""
    if not evidence.scores or not evidence.trials:
        return []
    measured = _measure_all(evidence, sorted(evidence.trials), mean_ap(evidence))
    draws = replicates(evidence, count, seed)
    summaries = []
    for key, (intervals, gain, best) in with_gains(measured, draws, MEASURES, baselines, "kendall", level).items():
        models = {m for by_model in evidence.scores[key].values() for m in by_model}
        against = " ".join(best) if gain is not None else None
        summaries.append(Summary(scope, *key, len(evidence.scores[key]), len(models), intervals, gain, against))
    return summaries


def mean_ap(evidence: Evidence) -> dict[str, dict[str, float]]:
    """Each target's models' mean AP over their trials (the data as measured)."""
    return {d: {m: float(t.mean()) for m, t in evidence.trials[d].items()} for d in sorted(evidence.trials)}


def with_gains(
    measured: dict, draws: list[dict], measures: Sequence[str], baselines: Sequence[str], lead: str, level: float
) -> dict[tuple, tuple[dict[str, Interval], Interval | None, tuple | None]]:
    """Per score: its ``measures`` with ``level`` intervals over ``draws``, and (for a score that is
    not a baseline) its paired gain in ``lead`` over the best baseline on the data, with that baseline."""
    candidates = [k for k in measured if k[0] in baselines and np.isfinite(measured[k][lead])]
    best = max(candidates, key=lambda k: measured[k][lead], default=None)
    found = {}
    for key, values in measured.items():
        intervals = {m: interval(values[m], np.array([r[key][m] for r in draws]), level) for m in measures}
        gain = None
        if best is not None and key[0] not in baselines:
            difference = np.array([r[key][lead] - r[best][lead] for r in draws])
            gain = interval(values[lead] - measured[best][lead], difference, level)
        found[key] = (intervals, gain, best)
    return found
