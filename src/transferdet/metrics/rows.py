"""The passes the metrics make over the N x D feature matrix, on the host in NumPy.

Everything the metrics do is either a pass over the N feature rows (a product with a small matrix,
weighted sums of rows, Gram matrices, row norms, log-sum-exps) or algebra on D x D, C x D and
smaller matrices. The passes are methods of a *rows* object: :class:`HostRows` here (NumPy, the
CPU path), :class:`~transferdet.metrics.device_rows.DeviceRows` on a torch device (a GPU, where
the features already are). The small algebra always runs in float64 NumPy on the host, so both
give the same scores to rounding (tests/test_device_metrics.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from scipy.linalg import blas
from threadpoolctl import threadpool_limits

from transferdet.metrics._checks import varying
from transferdet.metrics._lapack import cholesky_in_place

BLOCK_ROWS = 1024  # rows per block of a blocked pass: 8 MB at D = 1024, reused


def class_coding_rate(centred_gram: np.ndarray, n: int, eps: float) -> float | None:
    """TransRate's coding rate of one class, 1/2 logdet(I + G / (n eps)), from the Gram matrix of
    its centred rows, by one Cholesky factorisation (LAPACK ``dpotrf``, with the GIL released so
    that two threads factorise at once). Overwrites ``centred_gram``; None when the matrix is not
    positive definite in floating point (the caller then takes the log-determinant by LU)."""
    matrix = centred_gram
    matrix /= n * eps
    matrix.flat[:: len(matrix) + 1] += 1.0
    return float(np.log(matrix.diagonal()).sum()) if cholesky_in_place(matrix) else None


def coding_rate_by_lu(rows: np.ndarray, eps: float) -> float:
    """The same rate by LU (``slogdet``), as the reference computes it."""
    matrix = rows.T @ rows / (len(rows) * eps)
    matrix.flat[:: len(matrix) + 1] += 1.0
    return 0.5 * float(np.linalg.slogdet(matrix)[1])


def one_hot(labels: np.ndarray, num_classes: int, weights: np.ndarray | None = None) -> np.ndarray:
    """(C, N): row k holds each sample of class k's weight (1 without ``weights``), 0 elsewhere."""
    matrix = np.zeros((num_classes, len(labels)))
    matrix[labels, np.arange(len(labels))] = 1.0 if weights is None else weights
    return matrix


def class_sums(x: np.ndarray, labels: np.ndarray, num_classes: int, weights: np.ndarray | None = None) -> np.ndarray:
    """Per-class sums of the rows of ``x`` (each row times its weight, if given): (C, D), as one
    matrix product."""
    return one_hot(labels, num_classes, weights) @ x


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


class HostRows:
    """Features ``F`` (N x D, float64 NumPy) and the passes the metrics make over them."""

    def __init__(self, features: np.ndarray) -> None:
        self.array = features
        self.n, self.d = features.shape

    def host(self) -> np.ndarray:
        return self.array

    def check_varying(self) -> None:
        """A :class:`MetricInputError` when every column is constant: nothing to score."""
        varying(self.array)

    def times(self, matrix: np.ndarray) -> np.ndarray:
        """``F @ matrix``: (N, k)."""
        return self.array @ matrix

    def weighted_sums(self, weights: np.ndarray) -> np.ndarray:
        """``weights @ F`` for ``weights`` (k, N): (k, D)."""
        return weights @ self.array

    def squared_norms(self) -> np.ndarray:
        """``|f_i|^2`` per row: (N,)."""
        return np.einsum("ij,ij->i", self.array, self.array)

    def row_logsumexp(self) -> np.ndarray:
        """``logsumexp`` of each row: (N,). PyTorch's runs on both cores, 6x faster than SciPy's
        here; by blocks of rows, so that its temporaries stay small."""
        rows = torch.from_numpy(self.array)
        return torch.cat([torch.logsumexp(block, dim=1) for block in rows.split(BLOCK_ROWS)]).numpy()

    def scaled_gram(self, centre: np.ndarray, scale: np.ndarray) -> np.ndarray:
        """``sum_i scale_i^2 (f_i - centre)(f_i - centre)^T`` (D x D), by blocks of rows."""

        def scaled_rows(rows: slice, block: np.ndarray) -> None:
            np.subtract(self.array[rows], centre, out=block)
            block *= scale[rows, None]

        return blocked_gram(self.n, self.d, scaled_rows)

    def gram(self) -> np.ndarray:
        """``F^T F`` (D x D)."""
        return self.array.T @ self.array

    def class_pass(
        self, labels: np.ndarray, counts: np.ndarray, rate_eps: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Class sums (C, D), the centred Gram matrix ``(F - mu)^T (F - mu)`` and TransRate's
        per-class coding rates (distortion ``rate_eps``), in one pass over each class's rows.

        Each class's rows, centred on the global mean (a few MB copied per class), give the class's
        Gram matrix, which joins the total and is then factorised in place for the class's coding
        rate. Two threads take the next class as they come free, each on one BLAS thread: rank-k
        updates with k ~ N/C and D x D Choleskys keep two cores busier that way than one call at a
        time on two threads. The class sums are on one BLAS thread too: after a multi-threaded call
        OpenBLAS's worker keeps spinning on a core for a while, which the two threads would share."""
        order = np.argsort(labels, kind="stable")
        bounds = np.concatenate([[0], np.cumsum(counts)])
        spans = list(zip(bounds[:-1], bounds[1:], strict=True))
        rates = np.empty(len(spans))
        total = _OrderedSum(np.zeros((self.d, self.d)))

        def one_class(c: int) -> None:
            start, stop = spans[c]
            part = self.array[order[start:stop]]
            part -= mean
            class_gram = part.T @ part  # numpy uses a symmetric rank-k update here
            total.add(c, class_gram)
            rate = class_coding_rate(class_gram, stop - start, rate_eps)
            rates[c] = rate if rate is not None else coding_rate_by_lu(part, rate_eps)

        with threadpool_limits(1):
            sums = class_sums(self.array, labels, len(counts))
            mean = sums.sum(axis=0) / self.n
            with ThreadPoolExecutor(2) as pool:  # the pool gives each class to whichever thread is free
                list(pool.map(one_class, range(len(spans))))
        return sums, total.value, rates
