"""TransRate: Huang, Huang, Kwok, Wang, Li, "Frustratingly Easy Transferability Estimation",
ICML 2022, as in thuml/Transfer-Learning-Library's ``tllib/ranking/transrate.py``:
the coding rate of the centred features, R(F, eps) = 1/2 logdet(I + F^T F / (N eps)), minus the
mean over classes of the coding rate of each class's rows (of the globally centred features),
eps = 1e-4. The total rate comes from the eigenvalues of the uncentred Gram matrix and the matrix
determinant lemma; each class's rate from one Cholesky factorisation.
"""

from __future__ import annotations

import numpy as np

from transferdet.metrics._checks import as_features, as_labels
from transferdet.metrics.gram import GramStats

EPS = 1e-4


def _rate(centred_gram: np.ndarray, n: int, eps: float) -> float:
    matrix = np.eye(len(centred_gram)) + centred_gram / (n * eps)
    try:
        factor = np.linalg.cholesky(matrix)
        return float(np.log(np.diag(factor)).sum())
    except np.linalg.LinAlgError:  # not numerically positive definite: fall back to LU
        return 0.5 * float(np.linalg.slogdet(matrix)[1])


def transrate_from(stats: GramStats, eps: float = EPS) -> float:
    n = stats.n
    values = stats.eigen[0]
    mean, m = stats.mean, stats.projected_mean
    c = 1.0 / (n * eps)
    diagonal = 1.0 + c * values
    total = 0.5 * (np.log(diagonal).sum() + np.log(1.0 - c * n * float(m @ (m / diagonal))))
    grams = stats.class_grams
    if grams is None:
        raise ValueError("transrate needs per-class Gram matrices: GramStats.of(..., class_grams=True)")
    per_class = 0.0
    for k, gram in enumerate(grams):
        nk, sums = int(stats.counts[k]), stats.class_sums[k]
        outer = np.outer(sums, mean)
        centred = gram - outer - outer.T + nk * np.outer(mean, mean)
        per_class += _rate(centred, nk, eps)
    return float(total - per_class / len(grams))


def transrate(features: np.ndarray, labels: np.ndarray, eps: float = EPS) -> float:
    """TransRate of ``features`` for ``labels`` (distortion ``eps``)."""
    f = as_features(features)
    return transrate_from(GramStats.of(f, as_labels(labels, len(f)), class_grams=True), eps)
