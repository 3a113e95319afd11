"""TransRate: Huang, Huang, Kwok, Wang, Li, "Frustratingly Easy Transferability Estimation",
ICML 2022, as in thuml/Transfer-Learning-Library's ``tllib/ranking/transrate.py``:
the coding rate of the centred features, R(F, eps) = 1/2 logdet(I + F^T F / (N eps)), minus the
mean over classes of the coding rate of each class's rows (of the globally centred features),
eps = 1e-4. The total rate comes from the eigenvalues of the uncentred Gram matrix and the matrix
determinant lemma; each class's rate from one Cholesky factorisation, made by ``GramStats`` in the
same pass that builds the Gram matrix.
"""

from __future__ import annotations

import numpy as np

from transferdet.metrics._checks import as_features, as_labels
from transferdet.metrics.gram import GramStats

EPS = 1e-4


def transrate_from(stats: GramStats, eps: float = EPS) -> float:
    n = stats.n
    values = stats.eigen[0]
    m = stats.projected_mean
    c = 1.0 / (n * eps)
    diagonal = 1.0 + c * values
    total = 0.5 * (np.log(diagonal).sum() + np.log(1.0 - c * n * float(m @ (m / diagonal))))
    if stats.class_rates is None or stats.rate_eps != eps:
        raise ValueError(f"transrate needs per-class coding rates: GramStats.of(..., rate_eps={eps})")
    return float(total - stats.class_rates.mean())


def transrate(features: np.ndarray, labels: np.ndarray, eps: float = EPS) -> float:
    """TransRate of ``features`` for ``labels`` (distortion ``eps``)."""
    f = as_features(features)
    return transrate_from(GramStats.of(f, as_labels(labels, len(f)), rate_eps=eps), eps)
