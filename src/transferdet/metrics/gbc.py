"""GBC: Pándy, Agostinelli, Uijlings, Ferrari, Mensink, "Transferability Estimation using
Bhattacharyya Class Separability", CVPR 2022 (google-research ``stable_transfer``).

Features are reduced by PCA to 64 dimensions; each class is a Gaussian with diagonal covariance;
GBC = - sum over ordered pairs of different classes of the Bhattacharyya coefficient
exp(-D_B), D_B = 1/8 dmu^T S^-1 dmu + 1/2 ln(det S / sqrt(det S_i det S_j)), S = (S_i + S_j) / 2.
Higher (closer to 0) means better separated classes.
"""

from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA

from transferdet.metrics._checks import as_features, as_labels, varying

PCA_DIMENSIONS = 64
VARIANCE_FLOOR = 1e-12


def gbc(features: np.ndarray, labels: np.ndarray, dimensions: int = PCA_DIMENSIONS) -> float:
    """GBC of ``features`` for ``labels`` (each class needs two samples for its variance)."""
    f = as_features(features)
    y = as_labels(labels, len(f), min_per_class=2)
    varying(f)
    k = min(dimensions, f.shape[1], f.shape[0])
    reduced = PCA(n_components=k, svd_solver="full").fit_transform(f) if f.shape[1] > k else f
    num_classes = int(y.max()) + 1
    means = np.stack([reduced[y == c].mean(axis=0) for c in range(num_classes)])
    variances = np.stack([reduced[y == c].var(axis=0) for c in range(num_classes)]) + VARIANCE_FLOOR
    total = 0.0
    for i in range(num_classes):
        for j in range(num_classes):
            if i == j:
                continue
            pooled = (variances[i] + variances[j]) / 2
            diff = means[i] - means[j]
            distance = 0.125 * np.sum(diff**2 / pooled) + 0.5 * (
                np.sum(np.log(pooled)) - 0.5 * (np.sum(np.log(variances[i])) + np.sum(np.log(variances[j])))
            )
            total += np.exp(-distance)
    return float(-total)
