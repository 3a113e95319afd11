"""ETran: Gholami, Akbari, Wang, Zhang, "ETran: Energy-Based Transferability Estimation", ICCV 2023.

The score adds an energy term (is the target data "in distribution" for the features?), the LDA
term (:func:`transferdet.metrics.lda.etran_lda`) and, for detection, a regression term on the box
targets. Energy follows mgholamikn/ETran ``Energy_Score(features, 0.5, 'bot')``: the mean of
``logsumexp`` over each sample's features across the lowest-energy 0.5% of samples. That code
takes ``int(percent * 10) * N // 1000`` samples, none when N < 200, and returns NaN there; we keep
at least one sample instead (documented fallback, never a NaN score). The regression term is minus
the mean squared residual of the least-squares fit of the box targets from the features (our
reading of the paper's SVD-based regression score; no reference value exists), computed in the
shared eigenbasis of F^T F: the minimum-norm solution over the eigen-directions whose eigenvalue
is above ``max(N, D) eps`` times the largest (those below are rounding noise of the Gram matrix;
``numpy.linalg.lstsq``, which works on F itself, keeps directions down to a singular value
``max(N, D) eps`` times the largest, so the two differ only on features that are nearly
collinear within 1e-6).
"""

from __future__ import annotations

import numpy as np

from transferdet.metrics._checks import as_features, as_labels, as_targets
from transferdet.metrics.gram import GramStats, Rows, as_rows
from transferdet.metrics.lda import etran_lda_from

ENERGY_PERCENT = 0.5


def etran_energy(features: np.ndarray, percent: float = ENERGY_PERCENT) -> float:
    """Mean energy (``logsumexp`` of the features) of the lowest ``percent`` % of samples."""
    return _energy(as_features(features), percent)


def _energy(features: np.ndarray | Rows, percent: float = ENERGY_PERCENT) -> float:
    energy = np.sort(as_rows(features).row_logsumexp())
    count = max(1, int(percent * 10) * len(energy) // 1000)
    return float(energy[:count].mean())


def etran_regression_from(stats: GramStats, features: np.ndarray | Rows, targets: np.ndarray) -> float:
    """Minus the mean squared residual of the least-squares fit of ``targets`` from ``features``."""
    values, vectors = stats.eigen
    keep = values > values[0] * max(stats.n, stats.d) * np.finfo(np.float64).eps
    basis = vectors[:, keep]
    rows = as_rows(features)
    projected = basis.T @ rows.weighted_sums(targets.T).T  # (k, K): V^T F^T y
    solution = basis @ (projected / values[keep, None])
    return float(-np.mean((rows.times(solution) - targets) ** 2))


def etran_regression(features: np.ndarray, targets: np.ndarray) -> float:
    """Minus the mean squared residual of the least-squares fit of ``targets`` from ``features``."""
    f = as_features(features)
    y = as_targets(targets, len(f))
    return etran_regression_from(GramStats.of(f, np.zeros(len(f), dtype=np.int64)), f, y)


def etran_from(stats: GramStats, features: np.ndarray | Rows, labels: np.ndarray, boxes: np.ndarray | None) -> float:
    """ETran from the shared statistics: energy + LDA (+ box regression when ``boxes`` are given)."""
    score = _energy(features) + etran_lda_from(stats, features, labels)
    if boxes is not None:
        score += etran_regression_from(stats, features, boxes)
    return float(score)


def etran(features: np.ndarray, labels: np.ndarray, boxes: np.ndarray | None = None) -> float:
    """ETran = energy + LDA (+ box regression when ``boxes`` are given)."""
    f = as_features(features)
    y = as_labels(labels, len(f), min_per_class=2)
    targets = as_targets(boxes, len(f), "boxes") if boxes is not None else None
    return etran_from(GramStats.of(f, y), f, y, targets)
