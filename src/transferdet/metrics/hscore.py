"""H-score and its shrinkage-regularised form.

H-score: Bao, Li, Huang, Zheng, Wang, "An Information-theoretic Approach to Transferability in Task
Transfer Learning", ICIP 2019: ``tr(cov(f)^+ cov(E[f | y]))``, as in thuml/Transfer-Learning-
Library's ``tllib/ranking/hscore.py`` (covariances with N - 1, pseudo-inverse).
Regularised H-score: Ibrahim, Ponomareva, Mazumder, "Newer is not always better: Rethinking
transferability metrics, their peculiarities, stability and performance", ECML-PKDD 2022: the
feature covariance replaced by its Ledoit-Wolf shrinkage estimate (Ledoit & Wolf, 2004;
scikit-learn's ``ledoit_wolf_shrinkage`` formula), the class covariance scaled by 1 - shrinkage.

Both run in the eigenbasis of F^T F: the centred covariance is that matrix minus a rank-one term,
so its (pseudo-)inverse needs no second decomposition.
"""

from __future__ import annotations

import numpy as np

from transferdet.metrics._checks import as_features, as_labels
from transferdet.metrics.gram import GramStats, Rows, as_rows


def _centred_class_means(stats: GramStats) -> np.ndarray:
    """``V^T (mu_c - mu)`` per class: (D, C)."""
    return stats.projected_class_sums / stats.counts - stats.projected_mean[:, None]


def h_score_from(stats: GramStats) -> float:
    values, _ = stats.eigen
    n = stats.n
    keep = values > values[0] * len(values) * np.finfo(float).eps
    scale = 1.0 / np.sqrt(values[keep])
    # whitened coordinates u = S^-1/2 V^T f: their second moment is the identity, their covariance
    # (I - n w w^T) / (n - 1) with w the whitened mean, whose pseudo-inverse is explicit
    w = stats.projected_mean[keep] * scale
    a = float(w @ w)
    q = w / np.sqrt(a) if a > 0 else w
    d = _centred_class_means(stats)[keep] * scale[:, None]
    along = q @ d
    spread = (d * d).sum(axis=0) - along**2
    remaining = 1.0 - n * a
    if remaining > 1e-10:
        spread = spread + along**2 / remaining
    # tr(pinv(cov_u) cov_g): pinv(cov_u) = (n-1)(...), cov_g = sum_c n_c d_c d_c^T / (n-1)
    return float(stats.counts @ spread)


def ledoit_wolf_shrinkage_from(stats: GramStats, row_norms4: float) -> tuple[float, float]:
    """Ledoit-Wolf shrinkage of the centred features' covariance and its ``trace / D``, from the
    Gram matrix and ``sum_i |f_i - mu|^4`` (the formula scikit-learn's ``ledoit_wolf_shrinkage`` uses)."""
    n, d = stats.n, stats.d
    values = stats.eigen[0]
    mean_proj = stats.projected_mean
    centred_gram_frob2 = float(
        (values**2).sum() - 2 * n * (values * mean_proj**2).sum() + n**2 * (mean_proj @ mean_proj) ** 2
    )
    trace = float(values.sum() - n * (mean_proj @ mean_proj))
    mu = trace / n / d
    delta_ = centred_gram_frob2 / n**2
    beta = (row_norms4 / n - delta_) / (d * n)
    delta = (delta_ - 2.0 * mu * trace / n + d * mu**2) / d
    beta = min(beta, delta)
    return (0.0 if beta == 0 else beta / delta), mu


def reg_h_score_from(stats: GramStats, features: np.ndarray | Rows) -> float:
    rows = as_rows(features)
    n = stats.n
    mean = stats.mean
    centred_norms = rows.squared_norms() - 2.0 * rows.times(mean) + mean @ mean
    shrinkage, mu = ledoit_wolf_shrinkage_from(stats, float((centred_norms**2).sum()))
    values = stats.eigen[0]
    m = stats.projected_mean
    # shrunk covariance in the eigenbasis: diag(p) - (1 - shrinkage) m m^T, p = (1-s) values/n + s mu
    p = (1 - shrinkage) * values / n + shrinkage * mu
    r = 1.0 - shrinkage
    pm = m / p
    denominator = 1.0 - r * (m @ pm)
    d = _centred_class_means(stats)
    quad = ((d * d) / p[:, None]).sum(axis=0) + r * (pm @ d) ** 2 / denominator
    return float(r * (stats.counts @ quad) / (n - 1))


def h_score(features: np.ndarray, labels: np.ndarray) -> float:
    """H-score of ``features`` for ``labels``."""
    f = as_features(features)
    return h_score_from(GramStats.of(f, as_labels(labels, len(f))))


def reg_h_score(features: np.ndarray, labels: np.ndarray) -> float:
    """Regularised (Ledoit-Wolf shrinkage) H-score of ``features`` for ``labels``."""
    f = as_features(features)
    return reg_h_score_from(GramStats.of(f, as_labels(labels, len(f))), f)
