"""TransRate: Huang, Huang, Kwok, Wang, Li, "Frustratingly Easy Transferability Estimation",
ICML 2022, as in thuml/Transfer-Learning-Library's ``tllib/ranking/transrate.py``:
the coding rate of the centred features, R(F, eps) = 1/2 logdet(I + F^T F / (N eps)), minus the
mean over classes of the coding rate of each class's rows (of the globally centred features),
eps = 1e-4. The total rate comes from the eigenvalues of the uncentred Gram matrix and the matrix
determinant lemma; each class's rate from one Cholesky factorisation.
"""

from __future__ import annotations

import numpy as np
import torch

from transferdet.metrics._checks import as_features, as_labels
from transferdet.metrics.gram import GramStats

EPS = 1e-4


def _rate(centred_gram: np.ndarray, n: int, eps: float) -> float:
    """1/2 logdet(I + G / (n eps)) by one Cholesky factorisation (LU if not positive definite)."""
    matrix = centred_gram / (n * eps)
    matrix.flat[:: len(matrix) + 1] += 1.0
    tensor = torch.from_numpy(matrix)
    factor, info = torch.linalg.cholesky_ex(tensor)
    if int(info) == 0:
        return float(factor.diagonal().log().sum())
    return 0.5 * float(torch.linalg.slogdet(tensor)[1])


def transrate_from(stats: GramStats, eps: float = EPS) -> float:
    n = stats.n
    values = stats.eigen[0]
    m = stats.projected_mean
    c = 1.0 / (n * eps)
    diagonal = 1.0 + c * values
    total = 0.5 * (np.log(diagonal).sum() + np.log(1.0 - c * n * float(m @ (m / diagonal))))
    if stats.class_grams is None:
        raise ValueError("transrate needs per-class Gram matrices: GramStats.of(..., class_grams=True)")
    per_class = sum(_rate(gram, int(nk), eps) for gram, nk in zip(stats.class_grams, stats.counts, strict=True))
    return float(total - per_class / len(stats.class_grams))


def transrate(features: np.ndarray, labels: np.ndarray, eps: float = EPS) -> float:
    """TransRate of ``features`` for ``labels`` (distortion ``eps``)."""
    f = as_features(features)
    return transrate_from(GramStats.of(f, as_labels(labels, len(f)), class_grams=True), eps)
