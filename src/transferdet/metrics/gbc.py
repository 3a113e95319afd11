"""GBC: Pándy, Agostinelli, Uijlings, Ferrari, Mensink, "Transferability Estimation using
Bhattacharyya Class Separability", CVPR 2022 (google-research ``stable_transfer``).

Features are reduced by PCA to 64 dimensions; each class is a Gaussian with diagonal covariance;
GBC = - sum over ordered pairs of different classes of the Bhattacharyya coefficient
exp(-D_B), D_B = 1/8 dmu^T S^-1 dmu + 1/2 ln(det S / sqrt(det S_i det S_j)), S = (S_i + S_j) / 2.
Higher (closer to 0) means better separated classes.

The PCA's components are the leading eigenvectors of the centred Gram matrix, which the shared
statistics hold (:attr:`GramStats.centred_gram`): only the 64 leading ones are computed (LAPACK
``dsyevr`` on a subset), and the features are projected once. The reference takes them from an SVD
of the centred features (scikit-learn's ``PCA``): the same vectors up to sign, which GBC does not
see (tests/test_metrics.py compares the two).
"""

from __future__ import annotations

import numpy as np
from scipy import linalg

from transferdet.metrics._checks import as_features, as_labels
from transferdet.metrics.gram import GramStats, Rows, as_rows
from transferdet.metrics.rows import class_sums

PCA_DIMENSIONS = 64
VARIANCE_FLOOR = 1e-12


def principal_axes(stats: GramStats, k: int) -> np.ndarray:
    """The ``k`` leading eigenvectors of the centred Gram matrix, largest first: (D, k)."""
    d = stats.d
    _, vectors = linalg.eigh(stats.centred_gram, subset_by_index=[d - k, d - 1], check_finite=False)
    return vectors[:, ::-1]


def gbc_from(
    stats: GramStats, features: np.ndarray | Rows, labels: np.ndarray, dimensions: int = PCA_DIMENSIONS
) -> float:
    """GBC from the shared statistics (each class needs two samples for its variance)."""
    rows = as_rows(features)
    n, d = rows.n, rows.d
    k = min(dimensions, d, n)
    if d > k:
        axes = principal_axes(stats, k)
        reduced = rows.times(axes) - stats.mean @ axes  # (F - mu) P without an N x D temporary
    else:
        reduced = rows.host()
    num_classes = len(stats.counts)
    counts = stats.counts[:, None]
    means = class_sums(reduced, labels, num_classes) / counts
    variances = class_sums((reduced - means[labels]) ** 2, labels, num_classes) / counts + VARIANCE_FLOOR
    log_variances = np.log(variances).sum(axis=1)
    total = 0.0
    for i in range(num_classes):
        pooled = (variances[i] + variances) / 2  # class i against every class j, (C, k)
        distance = 0.125 * ((means[i] - means) ** 2 / pooled).sum(axis=1) + 0.5 * (
            np.log(pooled).sum(axis=1) - 0.5 * (log_variances[i] + log_variances)
        )
        coefficients = np.exp(-distance)
        total += coefficients.sum() - coefficients[i]
    return float(-total)


def gbc(features: np.ndarray, labels: np.ndarray, dimensions: int = PCA_DIMENSIONS) -> float:
    """GBC of ``features`` for ``labels`` (each class needs two samples for its variance)."""
    f = as_features(features)
    y = as_labels(labels, len(f), min_per_class=2)
    return gbc_from(GramStats.of(f, y), f, y, dimensions)
