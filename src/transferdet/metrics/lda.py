"""Shrinkage linear discriminant scores: SFDA and ETran's LDA term.

SFDA: Shao, Zhao, Ge, Zhao, Li, Tong, Luo, "Not All Models Are Equal: Predicting Model
Transferability in a Self-challenging Fisher Space", ECCV 2022 (TencentARC/SFDA ``metrics.py``):
a regularised Fisher discriminant (within-class scatter shrunk towards its mean eigenvalue, the
strength exp(-5 lambda_max) from three power iterations), whose class probabilities re-mix each
sample towards the other classes' mean ("ConfMix"); a second discriminant on the mixed features
gives the mean probability of the true class.
ETran's LDA term: Gholami, Akbari, Wang, Zhang, "ETran: Energy-Based Transferability Estimation",
ICCV 2023 (mgholamikn/ETran ``metrics.py`` ``LDA_Score``): the first discriminant alone, its
eigenvectors taken, as in that code, from ``numpy.linalg.eigh`` of ``inv(Sw) @ Sb`` (eigh reads
only the lower triangle of that non-symmetric product; kept so that scores agree with the paper's).
"""

from __future__ import annotations

import numpy as np
from scipy import linalg
from scipy.special import softmax

from transferdet.metrics._checks import as_features, as_labels, varying


def _covariance(x: np.ndarray) -> np.ndarray:
    return np.atleast_2d(np.cov(x.T, bias=True))


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


class ShrinkageDiscriminant:
    """The discriminant both metrics fit; ``generalized`` picks scipy's generalized symmetric
    eigensolver (SFDA) or numpy's eigh on inv(Sw) Sb (ETran)."""

    def __init__(self, shrinkage: float | None = None, generalized: bool = True) -> None:
        self.shrinkage = shrinkage
        self.generalized = generalized

    def fit(self, x: np.ndarray, y: np.ndarray) -> ShrinkageDiscriminant:
        counts = np.bincount(y)
        priors = counts / len(y)
        means = np.zeros((len(counts), x.shape[1]))
        np.add.at(means, y, x)
        means /= counts[:, None]
        within = sum(priors[k] * _covariance(x[y == k]) for k in range(len(counts)))
        if self.shrinkage is None:
            self.shrinkage = max(float(np.exp(-5.0 * largest_eigenvalue(within))), 1e-10)
        total = _shrunk(_covariance(x), self.shrinkage)
        shrunk_within = _shrunk(within, self.shrinkage)
        between = total - shrunk_within
        if self.generalized:
            values, vectors = linalg.eigh(between, shrunk_within)
        else:
            values, vectors = np.linalg.eigh(np.linalg.inv(shrunk_within) @ between)
        vectors = vectors[:, np.argsort(values)[::-1]]
        self.means = means
        self.coef = means @ vectors @ vectors.T
        self.intercept = -0.5 * np.einsum("ij,ij->i", means, self.coef) + np.log(priors)
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return softmax(x @ self.coef.T + self.intercept, axis=1)


def sfda(features: np.ndarray, labels: np.ndarray) -> float:
    """SFDA score of ``features`` for ``labels`` (each class needs two samples)."""
    x = as_features(features).copy()
    y = as_labels(labels, len(x), min_per_class=2)
    varying(x)
    n = len(y)
    first = ShrinkageDiscriminant().fit(x, y)
    probs = softmax(first.predict_proba(x), axis=1)  # softened, as in the reference
    num_classes = len(first.means)
    others = (first.means.sum(axis=0, keepdims=True) - first.means) / (num_classes - 1)
    confidence = probs[np.arange(n), y][:, None]
    x = confidence * x + (1.0 - confidence) * others[y]
    second = ShrinkageDiscriminant(shrinkage=first.shrinkage).fit(x, y)
    return float(second.predict_proba(x)[np.arange(n), y].mean())


def etran_lda(features: np.ndarray, labels: np.ndarray) -> float:
    """ETran's LDA term: mean probability of the true class under the shrinkage discriminant."""
    x = as_features(features)
    y = as_labels(labels, len(x), min_per_class=2)
    varying(x)
    probs = ShrinkageDiscriminant(generalized=False).fit(x, y).predict_proba(x)
    return float(probs[np.arange(len(y)), y].mean())
