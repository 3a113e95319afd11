"""ETran: Gholami, Akbari, Wang, Zhang, "ETran: Energy-Based Transferability Estimation", ICCV 2023.

The score adds an energy term (is the target data "in distribution" for the features?), the LDA
term (:func:`transferdet.metrics.lda.etran_lda`) and, for detection, a regression term on the box
targets. Energy follows mgholamikn/ETran ``Energy_Score(features, 0.5, 'bot')``: the mean of
``logsumexp`` over each sample's features across the lowest-energy 0.5% of samples. That code
takes ``int(percent * 10) * N // 1000`` samples, none when N < 200, and returns NaN there; we keep
at least one sample instead (documented fallback, never a NaN score). The regression term is minus
the mean squared residual of the least-squares fit of the box targets from the features (our
reading of the paper's SVD-based regression score; no reference value exists).
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

from transferdet.metrics._checks import as_features, as_targets
from transferdet.metrics.lda import etran_lda

ENERGY_PERCENT = 0.5


def etran_energy(features: np.ndarray, percent: float = ENERGY_PERCENT) -> float:
    """Mean energy (``logsumexp`` of the features) of the lowest ``percent`` % of samples."""
    f = as_features(features)
    energy = np.sort(logsumexp(f, axis=1))
    count = max(1, int(percent * 10) * len(energy) // 1000)
    return float(energy[:count].mean())


def etran_regression(features: np.ndarray, targets: np.ndarray) -> float:
    """Minus the mean squared residual of the least-squares fit of ``targets`` from ``features``."""
    f = as_features(features)
    y = as_targets(targets, len(f))
    solution, *_ = np.linalg.lstsq(f, y, rcond=None)
    return float(-np.mean((f @ solution - y) ** 2))


def etran(features: np.ndarray, labels: np.ndarray, boxes: np.ndarray | None = None) -> float:
    """ETran = energy + LDA (+ box regression when ``boxes`` are given)."""
    score = etran_energy(features) + etran_lda(features, labels)
    if boxes is not None:
        score += etran_regression(features, boxes)
    return float(score)
