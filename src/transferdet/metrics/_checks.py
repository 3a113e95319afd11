"""Input checks shared by the metrics: finite float64 features, contiguous labels, enough samples."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from transferdet.errors import TransferdetError

MAX_MAGNITUDE = 1e100  # beyond it, squares and products of features overflow float64 (1.8e308)


class MetricInputError(TransferdetError, ValueError):
    """Input a transferability metric cannot score (one class, too few samples, NaN features...)."""


def check_feature_shape(shape: tuple[int, ...], name: str = "features") -> None:
    """An (N, D) matrix with at least two rows."""
    if len(shape) != 2:
        raise MetricInputError(f"{name} must be an (N, D) array, got shape {tuple(shape)}")
    if shape[0] < 2:
        raise MetricInputError(f"{name}: need at least 2 samples, got {shape[0]}")


def check_largest(largest: float, bad_rows: Callable[[], int], name: str = "features") -> None:
    """The features' largest magnitude is finite (else ``bad_rows()`` rows hold NaN or infinities)
    and small enough for their Gram matrix not to overflow."""
    if not np.isfinite(largest):
        raise MetricInputError(f"{name}: {bad_rows()} row(s) hold NaN or infinite values")
    if largest > MAX_MAGNITUDE:
        raise MetricInputError(
            f"{name}: values up to {largest:.3g} overflow their Gram matrix (limit {MAX_MAGNITUDE:g})"
        )


def as_features(features: np.ndarray, name: str = "features") -> np.ndarray:
    array = np.asarray(features, dtype=np.float64)
    check_feature_shape(array.shape, name)
    # the extremes propagate NaN and infinities: two passes, no N x D temporary
    largest = max(float(array.max()), -float(array.min()))
    check_largest(largest, lambda: int((~np.isfinite(array)).any(axis=1).sum()), name)
    return array


def varying(features: np.ndarray, name: str = "features") -> np.ndarray:
    """``features`` themselves, unless every column is constant (all-zero features included):
    then no metric has anything to score."""
    start, size = 1, 8
    while start < len(features):  # rows in growing blocks: real features differ within the first few
        if (features[start : start + size] != features[0]).any():
            return features
        start, size = start + size, size * 4
    raise constant_features(len(features), name)


def constant_features(rows: int, name: str = "features") -> MetricInputError:
    """The error for features whose every column is constant, on the host or a device."""
    return MetricInputError(f"{name}: every column is constant (all {rows} rows are equal): nothing to score")


def as_labels(labels: np.ndarray, n: int, min_per_class: int = 1) -> np.ndarray:
    """Labels remapped to contiguous ids 0..C-1 (in sorted order of the given ids)."""
    array = np.asarray(labels).reshape(-1)
    if len(array) != n:
        raise MetricInputError(f"labels: {len(array)} labels for {n} samples")
    _, contiguous = np.unique(array, return_inverse=True)
    counts = np.bincount(contiguous)
    if len(counts) < 2:
        raise MetricInputError("labels: a single class; classification metrics need at least two")
    if counts.min() < min_per_class:
        raise MetricInputError(
            f"labels: a class has {counts.min()} sample(s); this metric needs at least {min_per_class} per class"
        )
    return contiguous.astype(np.int64)


def as_targets(targets: np.ndarray, n: int, name: str = "targets") -> np.ndarray:
    array = np.asarray(targets, dtype=np.float64)
    array = array.reshape(-1, 1) if array.ndim == 1 else array
    if array.shape[0] != n:
        raise MetricInputError(f"{name}: {array.shape[0]} rows for {n} samples")
    if not np.isfinite(array).all():
        raise MetricInputError(f"{name}: NaN or infinite values")
    return array
