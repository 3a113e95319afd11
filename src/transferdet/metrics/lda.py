"""Shrinkage linear discriminant scores: SFDA and ETran's LDA term, from the shared statistics.

SFDA: Shao, Zhao, Ge, Zhao, Li, Tong, Luo, "Not All Models Are Equal: Predicting Model
Transferability in a Self-challenging Fisher Space", ECCV 2022 (TencentARC/SFDA ``metrics.py``):
a regularised Fisher discriminant (within-class scatter shrunk towards its mean eigenvalue, the
strength exp(-5 lambda_max) from three power iterations), whose class probabilities re-mix each
sample towards the other classes' mean ("ConfMix"); a second discriminant on the mixed features
gives the mean probability of the true class.
ETran's LDA term: Gholami, Akbari, Wang, Zhang, "ETran: Energy-Based Transferability Estimation",
ICCV 2023 (mgholamikn/ETran ``metrics.py`` ``LDA_Score``): the mean probability of the true class
under the first discriminant.

Both references fit the discriminant as scikit-learn's ``solver="eigen"`` does: eigenvectors V of
the between-class scatter against the within-class one, all D of them kept, and class scores
``x V V^T mu_c``. Keeping all D makes the eigendecomposition cancel, which is what we compute:
- SFDA's V comes from the generalised problem (``scipy.linalg.eigh(Sb, Sw)``), normalised so that
  ``V^T Sw V = I``; hence ``V V^T = Sw^-1`` and the scores are ``x Sw^-1 mu_c``: one Cholesky
  solve of the shrunk within-class scatter, no eigendecomposition;
- ETran's V comes from ``numpy.linalg.eigh(inv(Sw) @ Sb)`` (which reads the lower triangle only of
  that non-symmetric product) and is orthonormal: ``V V^T = I``, and the scores are ``x . mu_c``,
  whatever the scatter matrices: a nearest-class-mean rule, with no matrix to invert.
The within-class scatter is the shared Gram matrix less its between-class part
(:attr:`GramStats.within_scatter`), so the first discriminant costs O(D^3 / 3) on top of the
shared pass; SFDA's second one, on features re-mixed sample by sample, needs their own scatter
matrix (one more ``X^T X``: no shared statistic gives it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.special import softmax

from transferdet.metrics._checks import MetricInputError, as_features, as_labels
from transferdet.metrics.gram import GramStats, Rows, as_rows
from transferdet.metrics.rows import one_hot


def _shrunk(matrix: np.ndarray, shrinkage: float) -> np.ndarray:
    d = len(matrix)
    out = (1.0 - shrinkage) * matrix
    out.flat[:: d + 1] += shrinkage * np.trace(matrix) / d
    return out


def largest_eigenvalue(matrix: np.ndarray, iterations: int = 3) -> float:
    """The power-iteration estimate of the largest eigenvalue SFDA uses (three double steps)."""
    x = matrix.sum(axis=1)
    for _ in range(iterations):
        t = matrix @ x
        y = t / np.linalg.norm(t)
        t = matrix @ y
        x = t / np.linalg.norm(t)
    return float(x @ matrix @ y)


@dataclass(frozen=True)
class Discriminant:
    """Linear class scores ``x coef^T + intercept`` (C classes)."""

    coef: np.ndarray  # (C, D)
    intercept: np.ndarray  # (C,)

    @classmethod
    def fit(cls, within: np.ndarray, means: np.ndarray, priors: np.ndarray, shrinkage: float) -> Discriminant:
        """SFDA's discriminant: ``within`` is sum_c prior_c cov_c (D x D), ``means`` (C x D)."""
        factor, info = torch.linalg.cholesky_ex(torch.from_numpy(_shrunk(within, shrinkage)))
        if info.item() != 0:
            raise MetricInputError("features: the shrunk within-class scatter is not positive definite")
        coef = torch.cholesky_solve(torch.from_numpy(np.ascontiguousarray(means.T)), factor).numpy().T
        return cls(coef, -0.5 * np.einsum("ij,ij->i", means, coef) + np.log(priors))

    def probabilities(self, rows: Rows) -> np.ndarray:
        return softmax(rows.times(self.coef.T) + self.intercept, axis=1)


def sfda_shrinkage(within: np.ndarray) -> float:
    """exp(-5 lambda_max) of the within-class covariance, at least 1e-10 (the reference's rule)."""
    return max(float(np.exp(-5.0 * largest_eigenvalue(within))), 1e-10)


def _true_class_mean(probs: np.ndarray, labels: np.ndarray) -> float:
    return float(probs[np.arange(len(labels)), labels].mean())


def _confidence(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The softened probability of each sample's true class (SFDA applies softmax to the
    discriminant's probabilities once more, as its reference does): (N,)."""
    return softmax(probs, axis=1)[np.arange(len(labels)), labels]


def _weighted_class_sums(rows: Rows, labels: np.ndarray, num_classes: int, c: np.ndarray) -> np.ndarray:
    """``sum_{i in k} c_i x_i`` and ``sum_{i in k} c_i^2 x_i`` for each class k, in one pass: (2C, D)."""
    weights = np.concatenate([one_hot(labels, num_classes, c), one_hot(labels, num_classes, c * c)])
    return rows.weighted_sums(weights)


def _mixed_within(
    stats: GramStats, rows: Rows, labels: np.ndarray, c: np.ndarray, others: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The class means (C, D) and within-class scatter (D x D) of the ConfMix features
    ``x'_i = c_i x_i + (1 - c_i) o_y``, never formed: with ``u = x - mu``, ``a = mu - o`` and
    ``s = o - mu'``, ``x' - mu'_y = c u + c a_y + s_y``, so the scatter is ``sum c^2 u u^T`` (one
    blocked pass over F) plus per-class terms."""
    counts, mu, num_classes = stats.counts, stats.mean, len(stats.counts)
    sum_c = np.bincount(labels, weights=c, minlength=num_classes)
    sum_c2 = np.bincount(labels, weights=c * c, minlength=num_classes)
    sums = _weighted_class_sums(rows, labels, num_classes, c)
    mixed_means = (sums[:num_classes] + (counts - sum_c)[:, None] * others) / counts[:, None]
    w1 = sums[:num_classes] - sum_c[:, None] * mu  # sum c u per class
    w2 = sums[num_classes:] - sum_c2[:, None] * mu  # sum c^2 u per class
    a, s = mu - others, others - mixed_means
    scatter = rows.scaled_gram(mu, c)
    # the per-class terms, sum_k (sum c^2) a a^T + (sum c)(a s^T + s a^T) + n_k s s^T + w2 a^T
    # + a w2^T + w1 s^T + s w1^T, as one product X^T (M X) with X = [a; s; w1; w2] (4C x D) and
    # M the symmetric 4C x 4C matrix of those class weights
    k = num_classes
    blocks = np.zeros((4 * k, 4 * k))
    diagonal = np.arange(k)
    blocks[diagonal, diagonal] = sum_c2  # a a^T
    blocks[diagonal, k + diagonal] = blocks[k + diagonal, diagonal] = sum_c  # a s^T, s a^T
    blocks[k + diagonal, k + diagonal] = counts  # s s^T
    blocks[k + diagonal, 2 * k + diagonal] = blocks[2 * k + diagonal, k + diagonal] = 1.0  # s w1^T, w1 s^T
    blocks[diagonal, 3 * k + diagonal] = blocks[3 * k + diagonal, diagonal] = 1.0  # a w2^T, w2 a^T
    stacked = np.concatenate([a, s, w1, w2])
    scatter += stacked.T @ (blocks @ stacked)
    return mixed_means, scatter


def sfda_from(stats: GramStats, features: np.ndarray | Rows, labels: np.ndarray) -> float:
    """SFDA from the shared statistics (the first discriminant) and one blocked pass over the
    features for the second (ConfMix: each sample moved towards the mean of the other classes'
    means, by how unsure the first discriminant is of its true class)."""
    rows = as_rows(features)
    n = stats.n
    priors, means = stats.counts / n, stats.class_means
    within = stats.within_scatter / n
    shrinkage = sfda_shrinkage(within)
    first = Discriminant.fit(within, means, priors, shrinkage)
    c = _confidence(first.probabilities(rows), labels)
    others = (means.sum(axis=0, keepdims=True) - means) / (len(means) - 1)
    mixed_means, mixed_scatter = _mixed_within(stats, rows, labels, c, others)
    second = Discriminant.fit(mixed_scatter / n, mixed_means, priors, shrinkage)
    # scores of the mixed features, c (F coef^T) + (1 - c) (o coef^T)_y, again without forming them
    scores = (
        c[:, None] * rows.times(second.coef.T)
        + (1.0 - c)[:, None] * (others @ second.coef.T)[labels]
        + second.intercept
    )
    return _true_class_mean(softmax(scores, axis=1), labels)


def etran_lda_from(stats: GramStats, features: np.ndarray | Rows, labels: np.ndarray) -> float:
    """ETran's LDA term: softmax over classes of ``x . mu_c - |mu_c|^2 / 2 + log prior_c``, the
    true class's probability averaged (the reference's discriminant, its V V^T = I cancelled)."""
    means = stats.class_means
    scores = (
        as_rows(features).times(means.T) - 0.5 * np.einsum("ij,ij->i", means, means) + np.log(stats.counts / stats.n)
    )
    return _true_class_mean(softmax(scores, axis=1), labels)


def sfda(features: np.ndarray, labels: np.ndarray) -> float:
    """SFDA score of ``features`` for ``labels`` (each class needs two samples)."""
    f = as_features(features)
    y = as_labels(labels, len(f), min_per_class=2)
    return sfda_from(GramStats.of(f, y), f, y)


def etran_lda(features: np.ndarray, labels: np.ndarray) -> float:
    """ETran's LDA term: mean probability of the true class under the shrinkage discriminant."""
    f = as_features(features)
    y = as_labels(labels, len(f), min_per_class=2)
    return etran_lda_from(GramStats.of(f, y), f, y)
