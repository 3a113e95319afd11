"""The statistics several metrics share, computed once per feature matrix.

One pass over the features gives the per-class Gram matrices (their sum is the full Gram
``F^T F``; each one, factorised, gives TransRate's per-class coding rate), the class sums and the
mean; one symmetric eigendecomposition of ``F^T F`` then serves
LogME (You et al., ICML 2021), H-score (Bao et al., ICIP 2019), the regularised H-score (Ibrahim et
al., 2022) and TransRate's total coding rate (Huang et al., ICML 2022), each reduced to O(D) or
O(D^2 C) work in the eigenbasis.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from transferdet.metrics.device_rows import DeviceRows
from transferdet.metrics.rows import HostRows, one_hot

Rows = HostRows | DeviceRows  # the features, with the passes the metrics make over them


def as_rows(features: np.ndarray | Rows) -> Rows:
    """``features`` as a rows object (an array becomes :class:`HostRows`)."""
    return HostRows(features) if isinstance(features, np.ndarray) else features


@dataclass
class GramStats:
    """``F^T F`` and friends for features ``F`` (N x D) and contiguous labels (C classes)."""

    n: int
    d: int
    counts: np.ndarray  # (C,)
    class_sums: np.ndarray  # (C, D)
    gram: np.ndarray  # (D, D), uncentered
    rate_eps: float | None = None
    class_rates: np.ndarray | None = field(default=None, repr=False)  # TransRate's per-class coding rates
    centred_pass: np.ndarray | None = field(default=None, repr=False)  # sum (f - mu)(f - mu)^T, when the pass made it

    @classmethod
    def of(cls, features: np.ndarray | Rows, labels: np.ndarray, rate_eps: float | None = None) -> GramStats:
        """From ``features`` (an array, or a rows object: :mod:`transferdet.metrics.rows`); with
        ``rate_eps``, also TransRate's per-class coding rates (distortion ``rate_eps``)."""
        rows = as_rows(features)
        rows.check_varying()
        num_classes = int(labels.max()) + 1
        counts = np.bincount(labels, minlength=num_classes)
        if rate_eps is None:
            return cls(rows.n, rows.d, counts, rows.weighted_sums(one_hot(labels, num_classes)), rows.gram())
        sums, centred, rates = rows.class_pass(labels, counts, rate_eps)
        mean = sums.sum(axis=0) / rows.n
        gram = rows.n * np.outer(mean, mean) + centred
        return cls(rows.n, rows.d, counts, sums, gram, rate_eps, rates, centred)

    @property
    def mean(self) -> np.ndarray:
        return self.class_sums.sum(axis=0) / self.n

    @property
    def class_means(self) -> np.ndarray:
        """(C, D)."""
        return self.class_sums / self.counts[:, None]

    @cached_property
    def centred_gram(self) -> np.ndarray:
        """``(F - mu)^T (F - mu)``: the class pass's own sum when it ran, else ``F^T F - n mu mu^T``."""
        if self.centred_pass is not None:
            return self.centred_pass
        mean = self.mean
        return self.gram - self.n * np.outer(mean, mean)

    @cached_property
    def within_scatter(self) -> np.ndarray:
        """``sum_c sum_{i in c} (f_i - mu_c)(f_i - mu_c)^T``: the centred Gram matrix less the
        between-class part ``sum_c n_c (mu_c - mu)(mu_c - mu)^T``."""
        offsets = self.class_means - self.mean
        return self.centred_gram - (offsets.T * self.counts) @ offsets

    @cached_property
    def eigen(self) -> tuple[np.ndarray, np.ndarray]:
        """Eigenvalues (clipped at 0, descending) and eigenvectors of the Gram matrix. NumPy's, not
        PyTorch's (1.45x faster at D = 1024 on the Intel CI machine): for N < D at large feature
        scales, LogME depends on the rounding noise of the null-space eigenvalues, and NumPy's
        agrees with the data-residual reference there to 1e-6 (tests/test_metrics_degenerate.py)
        where PyTorch's is 2e-6 away."""
        values, vectors = np.linalg.eigh(self.gram)
        return np.clip(values[::-1], 0.0, None), np.ascontiguousarray(vectors[:, ::-1])

    @cached_property
    def projected_class_sums(self) -> np.ndarray:
        """``V^T F^T y_c`` for each class's indicator ``y_c``: (D, C)."""
        return self.eigen[1].T @ self.class_sums.T

    @cached_property
    def projected_mean(self) -> np.ndarray:
        return self.projected_class_sums.sum(axis=1) / self.n
