"""How well each metric predicted fine-tuned AP: correlations over models, per dataset and pooled.

Per dataset, for each (metric, layer, features): Pearson, Spearman, Kendall tau (with p-values,
``scipy.stats``), weighted tau (``scipy.stats.weightedtau``, which weighs agreement among the
top-ranked models more, as in Vigna, "A Weighted Correlation Index for Rankings with Ties", WWW
2015) and top-1 regret (the AP of the best model minus the AP of the model the metric ranks first;
Fouquet et al., "Transferability Metrics for Object Detection", 2023, report the same measures).
Pooled over datasets: the same measures on all (dataset, model) pairs after standardising scores
and APs within each dataset (a dataset's scale says nothing about its models' order); regret is
the mean of the per-dataset regrets.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from scipy import stats

from transferdet.ties import tied_for_first

POOLED = "(pooled)"


@dataclass(frozen=True)
class Correlation:
    dataset: str
    metric: str
    layer: str
    features: str
    models: int
    pearson: float
    pearson_p: float
    spearman: float
    spearman_p: float
    kendall: float
    kendall_p: float
    weighted_tau: float
    top1_regret: float
    scope: str = "all sources"  # or "pretrained sources": the models correlated over


def top1_regret(scores: np.ndarray, ap: np.ndarray) -> float:
    """AP of the best model minus AP of the model with the highest score; where several tie for
    the highest (:mod:`~transferdet.ties`), the mean AP over them: a tie picks none of them, so
    its expected regret is that of a random choice among them."""
    picked = tied_for_first([float(s) for s in scores])
    return float(ap.max() - np.mean(np.asarray(ap)[picked]))


def _nan_safe(value: float) -> float:
    return float(value) if value is not None and math.isfinite(value) else float("nan")


def correlation_measures(scores: np.ndarray, ap: np.ndarray) -> dict[str, float]:
    """All measures for one metric's ``scores`` against ``ap`` over the same models. Constant
    inputs give NaN correlations (undefined), not an error."""
    scores, ap = np.asarray(scores, dtype=np.float64), np.asarray(ap, dtype=np.float64)
    if len(scores) < 2 or np.ptp(scores) == 0 or np.ptp(ap) == 0:
        nan = float("nan")
        result = dict.fromkeys(("pearson", "pearson_p", "spearman", "spearman_p", "kendall", "kendall_p"), nan)
        return {**result, "weighted_tau": nan, "top1_regret": top1_regret(scores, ap) if len(scores) else nan}
    pearson = stats.pearsonr(scores, ap)
    spearman = stats.spearmanr(scores, ap)
    kendall = stats.kendalltau(scores, ap)
    return {
        "pearson": _nan_safe(pearson.statistic),
        "pearson_p": _nan_safe(pearson.pvalue),
        "spearman": _nan_safe(spearman.statistic),
        "spearman_p": _nan_safe(spearman.pvalue),
        "kendall": _nan_safe(kendall.statistic),
        "kendall_p": _nan_safe(kendall.pvalue),
        "weighted_tau": _nan_safe(stats.weightedtau(scores, ap).statistic),
        "top1_regret": top1_regret(scores, ap),
    }


def ap_summary(ap_rows: list[dict], target: str) -> dict[tuple[str, str], tuple[float, float, int]]:
    """(dataset, model) -> (mean, std, trials) of ``target`` over trials (std with ddof 1; 0 for
    one trial)."""
    values: dict[tuple[str, str], list[float]] = defaultdict(list)
    for row in ap_rows:
        if row["key"] == target and row["value"] is not None:
            values[(row["dataset"], row["model"])].append(row["value"])
    return {
        key: (float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, len(v)) for key, v in values.items()
    }


def standardised(values: np.ndarray) -> np.ndarray:
    std = values.std()
    return (values - values.mean()) / std if std > 0 else values - values.mean()


def correlate(
    score_rows: list[dict], ap_rows: list[dict], target: str = "AP50", scope: str = "all sources"
) -> list[Correlation]:
    """Correlations of every (metric, layer, features) with mean ``target`` AP, per dataset and
    pooled, over the models that have both a score and an AP (``scope`` names that set)."""
    ap = ap_summary(ap_rows, target)
    grouped: dict[tuple[str, str, str, str], dict[str, float]] = defaultdict(dict)
    for row in score_rows:
        if row["score"] is not None and math.isfinite(row["score"]):
            grouped[(row["dataset"], row["metric"], row["layer"], row["features"])][row["model"]] = row["score"]
    results = []
    pooled: dict[tuple[str, str, str], list[tuple[np.ndarray, np.ndarray]]] = defaultdict(list)
    firsts = [list(dict.fromkeys(key[i] for key in grouped)) for i in range(4)]  # first-seen orders

    def order(key: tuple[str, ...]) -> tuple[int, ...]:
        return tuple(firsts[i].index(part) for i, part in enumerate(key))

    for (dataset, metric, layer, features), by_model in sorted(grouped.items(), key=lambda item: order(item[0])):
        models = [m for m in by_model if (dataset, m) in ap]
        if len(models) < 2:
            continue
        scores = np.array([by_model[m] for m in models])
        aps = np.array([ap[(dataset, m)][0] for m in models])
        measures = correlation_measures(scores, aps)
        results.append(Correlation(dataset, metric, layer, features, len(models), **measures, scope=scope))
        pooled[(metric, layer, features)].append((scores, aps))
    for (metric, layer, features), parts in pooled.items():
        if len(parts) < 2:
            continue
        measures = pooled_measures(parts)
        models = sum(len(s) for s, _ in parts)
        results.append(Correlation(POOLED, metric, layer, features, models, **measures, scope=scope))
    return results


def pooled_measures(parts: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    """The measures over several datasets' ``(scores, APs)``: correlations of the concatenated
    values after standardising each dataset's, and the mean of the per-dataset regrets."""
    scores = np.concatenate([standardised(s) for s, _ in parts])
    aps = np.concatenate([standardised(a) for _, a in parts])
    measures = correlation_measures(scores, aps)
    measures["top1_regret"] = float(np.mean([top1_regret(s, a) for s, a in parts]))
    return measures
