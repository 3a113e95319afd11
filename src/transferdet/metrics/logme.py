"""LogME: the log marginal evidence of Bayesian linear regression from features to targets.

You, Liu, Wang, Long, "LogME: Practical Assessment of Pre-trained Models for Transfer Learning",
ICML 2021. For each target column y (a one-hot class column, or a regression target) the evidence
p(y | F, alpha, beta) is maximised over the prior precision alpha and noise precision beta with the
paper's fixed-point updates (at most 11, stopping when alpha/beta changes by less than 1%), and the
per-column evidences, divided by N, are averaged. This follows thuml/Transfer-Learning-Library's
``tllib/ranking/logme.py`` step for step, with the full ``(D/2) log alpha`` term, so it is also
right when N < D or the features are rank-deficient (thuml/LogME's fixed-point variant drops the
``(D - k) log alpha`` part there). Each update costs O(D) in the eigenbasis of F^T F:
with z = V^T m, ``|m|^2 = |z|^2`` and ``|y - F m|^2 = |y|^2 - 2 (V^T F^T y) . z + sum(s z^2)``.

TLogME (Fouquet, Maggio, Dreyfus-Schmidt, "Transferability Metrics for Object Detection", 2023) is
the mean of LogME on the box classes and LogME on the 4 box coordinates.
"""

from __future__ import annotations

import numpy as np

from transferdet.metrics._checks import MetricInputError, as_features, as_labels, as_targets
from transferdet.metrics.gram import GramStats, Rows, as_rows

MAX_ITERATIONS = 11
TOLERANCE = 0.01


def _residual_parts(projected: np.ndarray, y_norm2: float, s: np.ndarray, n: int) -> tuple[np.ndarray, float]:
    """``p^2 / s`` per eigen-direction (0 where the eigenvalue is numerically 0) and ``|y_perp|^2``,
    the part of ``|y|^2`` outside F's column space (clamped at 0)."""
    cut = float(s.max(initial=0.0)) * max(n, len(s)) * np.finfo(np.float64).eps
    inside = np.where(s > cut, projected**2 / np.where(s > cut, s, 1.0), 0.0)
    return inside, max(y_norm2 - float(inside.sum()), 0.0)


def column_evidence(projected: float | np.ndarray, y_norm2: float, eigenvalues: np.ndarray, n: int) -> float:
    """Maximum evidence / N for one target column, given ``V^T F^T y`` and ``|y|^2``.

    The residual ``|y - F m|^2`` is computed as ``|y_perp|^2 + sum (p^2 / s) (alpha / (alpha + beta s))^2``
    (the same quantity as ``|y|^2 - 2 p.z + sum s z^2``, without its cancellation, which lost every
    digit for N < D at large feature scales)."""
    s = eigenvalues
    d = len(s)
    inside, outside = _residual_parts(np.asarray(projected, dtype=np.float64), y_norm2, s, n)
    alpha, beta = 1.0, 1.0
    lam = alpha / beta
    for _ in range(MAX_ITERATIONS):
        gamma = float((s / (s + lam)).sum())
        shrink = alpha / (alpha + beta * s)  # 1 - beta s / (alpha + beta s), at this step's alpha and beta
        z = projected * beta / (alpha + beta * s)
        alpha_de = float(z @ z)
        if alpha_de <= 0.0:
            raise MetricInputError("targets: orthogonal to every feature direction (LogME's prior is unbounded)")
        beta_de = outside + float(inside @ shrink**2)
        if not beta_de > 0.0:
            raise MetricInputError(
                "targets: the features fit them exactly (zero residual; LogME's evidence is unbounded)"
            )
        alpha = gamma / alpha_de
        if not n - gamma > 0.0:
            raise MetricInputError(
                f"features: {n} samples in {d} dimensions fit the targets exactly (N - gamma = {n - gamma:.3g}); "
                "LogME is undefined here (use more boxes or a smaller layer)"
            )
        beta = (n - gamma) / beta_de
        new_lam = alpha / beta
        if abs(new_lam - lam) / lam < TOLERANCE:
            break
        lam = new_lam
    evidence = (
        d / 2.0 * np.log(alpha)
        + n / 2.0 * np.log(beta)
        - 0.5 * np.sum(np.log(alpha + beta * s))
        - beta / 2.0 * beta_de
        - alpha / 2.0 * alpha_de
        - n / 2.0 * np.log(2 * np.pi)
    )
    return float(evidence / n)


def logme_from(stats: GramStats) -> float:
    """LogME on the classes, from shared statistics (the one-hot columns' ``|y|^2`` are the counts)."""
    eigenvalues = stats.eigen[0]
    projected = stats.projected_class_sums
    return float(
        np.mean(
            [
                column_evidence(projected[:, c], float(stats.counts[c]), eigenvalues, stats.n)
                for c in range(len(stats.counts))
            ]
        )
    )


def logme_regression_from(stats: GramStats, features: np.ndarray | Rows, targets: np.ndarray) -> float:
    eigenvalues, vectors = stats.eigen
    # (targets^T F)^T rather than F^T targets: the same product, in half the time here (BLAS streams F once)
    projected = vectors.T @ as_rows(features).weighted_sums(targets.T).T
    norms = (targets**2).sum(axis=0)
    return float(
        np.mean(
            [column_evidence(projected[:, j], float(norms[j]), eigenvalues, stats.n) for j in range(targets.shape[1])]
        )
    )


def logme(features: np.ndarray, labels: np.ndarray) -> float:
    """LogME of ``features`` (N x D) for classification ``labels`` (N,)."""
    f = as_features(features)
    return logme_from(GramStats.of(f, as_labels(labels, len(f))))


def logme_regression(features: np.ndarray, targets: np.ndarray) -> float:
    """LogME of ``features`` for regression ``targets`` (N x K), averaged over the K columns."""
    f = as_features(features)
    y = as_targets(targets, len(f))
    stats = GramStats.of(f, np.zeros(len(f), dtype=np.int64))
    return logme_regression_from(stats, f, y)


def tlogme(features: np.ndarray, labels: np.ndarray, boxes: np.ndarray) -> float:
    """TLogME: (LogME on box classes + LogME on the box coordinates) / 2 (the TMOD paper)."""
    f = as_features(features)
    stats = GramStats.of(f, as_labels(labels, len(f)))
    return 0.5 * (logme_from(stats) + logme_regression_from(stats, f, as_targets(boxes, len(f), "boxes")))
