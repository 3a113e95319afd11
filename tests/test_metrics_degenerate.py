"""Degenerate features never escape as a Python exception or a silent NaN: all-zero, constant or
huge features, targets the features fit exactly, N < D at any scale; and the in-place Cholesky
refuses memory it must not write."""

from __future__ import annotations

import numpy as np
import pytest

from transferdet import metrics
from transferdet.metrics import MetricInputError
from transferdet.metrics._lapack import cholesky_in_place

CLASS_METRICS = ["logme", "h_score", "reg_h_score", "transrate", "sfda", "etran_lda", "gbc"]
LABELS = np.repeat([0, 1], 25)


@pytest.mark.parametrize(
    ("features", "reason"),
    [
        (np.zeros((50, 8)), "every column is constant"),
        (np.full((50, 8), 3.0), "every column is constant"),
        (np.random.default_rng(0).normal(size=(50, 8)) * 1e200, "overflow their Gram matrix"),
    ],
    ids=["zeros", "constant", "huge"],
)
@pytest.mark.parametrize("name", CLASS_METRICS)
def test_degenerate_features_are_a_metric_input_error(features, reason, name):
    with pytest.raises(MetricInputError, match=reason):
        getattr(metrics, name)(features, LABELS)


def test_targets_the_features_fit_exactly_are_an_error_not_nan():
    features = np.random.default_rng(1).normal(size=(50, 8))
    with pytest.raises(MetricInputError, match="fit them exactly"):
        metrics.logme_regression(features, features[:, :4] * 10)
    with pytest.raises(MetricInputError, match="fit them exactly"):
        metrics.tlogme(features, LABELS, features[:, :4] * 10)


def _reference_logme(features: np.ndarray, labels: np.ndarray) -> float:
    """LogME's fixed point (tllib ``logme.py``) with the residual ``|y - F m|^2`` taken on the data."""
    n, d = features.shape
    s, v = np.linalg.eigh(features.T @ features)
    s = np.clip(s, 0, None)
    evidences = []
    for y in np.eye(labels.max() + 1)[labels].T:
        p, alpha, beta, lam = v.T @ (features.T @ y), 1.0, 1.0, 1.0
        for _ in range(11):
            gamma = (s / (s + lam)).sum()
            m = v @ (p * beta / (alpha + beta * s))
            alpha_de, beta_de = m @ m, (y - features @ m) @ (y - features @ m)
            alpha, beta = gamma / alpha_de, (n - gamma) / beta_de
            if abs(alpha / beta - lam) / lam < 0.01:
                break
            lam = alpha / beta
        evidence = d / 2 * np.log(alpha) + n / 2 * np.log(beta) - 0.5 * np.sum(np.log(alpha + beta * s))
        evidences.append((evidence - beta / 2 * beta_de - alpha / 2 * alpha_de - n / 2 * np.log(2 * np.pi)) / n)
    return float(np.mean(evidences))


@pytest.mark.parametrize("scale", [1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 300.0])
@pytest.mark.parametrize(
    ("n", "d", "classes", "absolute"), [(60, 128, 4, False), (100, 512, 5, True), (300, 32, 3, False)]
)
def test_logme_agrees_with_the_data_residual_at_every_scale(n, d, classes, absolute, scale):
    rng = np.random.default_rng([n, d, int(scale * 1000)])
    features = rng.normal(size=(n, d))
    features = (np.abs(features) if absolute else features) * scale
    labels = np.repeat(np.arange(classes), n // classes)
    reference = _reference_logme(features, labels)
    if not np.isfinite(reference):  # the fixed point interpolates: undefined, and said so
        with pytest.raises(MetricInputError, match="fit the targets exactly"):
            metrics.logme(features, labels)
        return
    assert metrics.logme(features, labels) == pytest.approx(reference, rel=1e-6)


def test_the_in_place_cholesky_refuses_read_only_and_memory_mapped_arrays(tmp_path):
    matrix = np.eye(4) * 2.0
    frozen = matrix.copy()
    frozen.setflags(write=False)
    with pytest.raises(ValueError, match="writeable matrix that owns its memory"):
        cholesky_in_place(frozen)
    np.testing.assert_array_equal(frozen, matrix)
    np.save(tmp_path / "m.npy", matrix)
    mapped = np.load(tmp_path / "m.npy", mmap_mode="r+")
    with pytest.raises(ValueError, match="writeable matrix that owns its memory"):
        cholesky_in_place(mapped)
    assert cholesky_in_place(matrix.copy())
