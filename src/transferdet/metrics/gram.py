"""The statistics several metrics share, computed once per feature matrix.

One pass over the features gives the per-class Gram matrices (their sum is the full Gram
``F^T F``; each one, factorised, gives TransRate's per-class coding rate), the class sums and the
mean; one symmetric eigendecomposition of ``F^T F`` then serves
LogME (You et al., ICML 2021), H-score (Bao et al., ICIP 2019), the regularised H-score (Ibrahim et
al., 2022) and TransRate's total coding rate (Huang et al., ICML 2022), each reduced to O(D) or
O(D^2 C) work in the eigenbasis.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from scipy.linalg import blas
from threadpoolctl import threadpool_limits

from transferdet.metrics._checks import varying
from transferdet.metrics._lapack import cholesky_in_place


def class_coding_rate(centred_gram: np.ndarray, n: int, eps: float) -> float | None:
    """TransRate's coding rate of one class, 1/2 logdet(I + G / (n eps)), from the Gram matrix of
    its centred rows, by one Cholesky factorisation (LAPACK ``dpotrf``, with the GIL released so
    that two threads factorise at once). Overwrites ``centred_gram``; None when the matrix is not
    positive definite in floating point (the caller then takes the log-determinant by LU)."""
    matrix = centred_gram
    matrix /= n * eps
    matrix.flat[:: len(matrix) + 1] += 1.0
    return float(np.log(matrix.diagonal()).sum()) if cholesky_in_place(matrix) else None


def _coding_rate_by_lu(rows: np.ndarray, eps: float) -> float:
    """The same rate by LU (``slogdet``), as the reference computes it."""
    matrix = rows.T @ rows / (len(rows) * eps)
    matrix.flat[:: len(matrix) + 1] += 1.0
    return 0.5 * float(np.linalg.slogdet(matrix)[1])


def class_sums(x: np.ndarray, labels: np.ndarray, num_classes: int, weights: np.ndarray | None = None) -> np.ndarray:
    """Per-class sums of the rows of ``x`` (each row times its weight, if given): (C, D), as one
    matrix product."""
    one_hot = np.zeros((num_classes, len(labels)))
    one_hot[labels, np.arange(len(labels))] = 1.0 if weights is None else weights
    return one_hot @ x


BLOCK_ROWS = 1024  # rows per block of a blocked pass: 8 MB at D = 1024, reused


def blocked_gram(n: int, d: int, fill: Callable[[slice, np.ndarray], None]) -> np.ndarray:
    """``X^T X`` of an N x D matrix never held whole: ``fill(rows, block)`` writes the rows
    ``rows`` into ``block``, one block of :data:`BLOCK_ROWS` at a time (one reused buffer; a fresh
    N x D array costs more in page faults than its arithmetic), each added by a BLAS symmetric
    rank-k update."""
    total = np.zeros((d, d), order="F")
    buffer = np.empty((min(BLOCK_ROWS, n), d))
    for start in range(0, n, BLOCK_ROWS):
        rows = slice(start, min(start + BLOCK_ROWS, n))
        block = buffer[: rows.stop - start]
        fill(rows, block)
        total = blas.dsyrk(1.0, block.T, beta=1.0, c=total, trans=0, lower=0, overwrite_c=1)
    return np.triu(total) + np.triu(total, 1).T


class _OrderedSum:
    """A sum of matrices added from several threads in any order but summed in the order of their
    index (0, 1, 2, ...), so the result does not depend on thread timing (floating-point addition
    is not associative). A matrix that arrives early is copied until its turn."""

    def __init__(self, zero: np.ndarray) -> None:
        self.value = zero
        self._next = 0
        self._waiting: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()

    def add(self, index: int, matrix: np.ndarray) -> None:
        with self._lock:
            if index != self._next:
                self._waiting[index] = matrix.copy()  # the caller goes on to overwrite its matrix
                return
            self.value += matrix
            self._next += 1
            while self._next in self._waiting:
                self.value += self._waiting.pop(self._next)
                self._next += 1


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
    def of(cls, features: np.ndarray, labels: np.ndarray, rate_eps: float | None = None) -> GramStats:
        """With ``rate_eps``, also TransRate's per-class coding rates (distortion ``rate_eps``)."""
        n, d = varying(features).shape
        num_classes = int(labels.max()) + 1
        counts = np.bincount(labels, minlength=num_classes)
        if rate_eps is None:
            return cls(n, d, counts, class_sums(features, labels, num_classes), features.T @ features)
        # one pass per class over its rows, centred on the global mean (a few MB copied per class):
        # the class's Gram matrix joins the total (plus n mu mu^T, the uncentred Gram matrix), then
        # is factorised in place for the class's coding rate. Two threads take the next class as
        # they come free, each on one BLAS thread: rank-k updates with k ~ N/C and D x D Choleskys
        # keep two cores busier that way than one call at a time on two threads. The class sums
        # are on one BLAS thread too: after a multi-threaded call OpenBLAS's worker keeps spinning
        # on a core for a while, which the pass's two threads would then share.
        order = np.argsort(labels, kind="stable")
        bounds = np.concatenate([[0], np.cumsum(counts)])
        spans = list(zip(bounds[:-1], bounds[1:], strict=True))
        rates = np.empty(len(spans))
        total = _OrderedSum(np.zeros((d, d)))

        def one_class(c: int) -> None:
            start, stop = spans[c]
            part = features[order[start:stop]]
            part -= mean
            class_gram = part.T @ part  # numpy uses a symmetric rank-k update here
            total.add(c, class_gram)
            rate = class_coding_rate(class_gram, stop - start, rate_eps)
            rates[c] = rate if rate is not None else _coding_rate_by_lu(part, rate_eps)

        with threadpool_limits(1):
            sums = class_sums(features, labels, num_classes)
            mean = sums.sum(axis=0) / n
            # the pool gives each class to whichever thread is free
            with ThreadPoolExecutor(2) as pool:
                list(pool.map(one_class, range(len(spans))))
        gram = n * np.outer(mean, mean) + total.value
        return cls(n, d, counts, sums, gram, rate_eps, rates, total.value)

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
