"""The metrics' passes over the N x D features in PyTorch, on the device the features are on.

On a GPU these passes (the Gram and class Gram matrices, products with small matrices, weighted
row sums, row norms and log-sum-exps) are most of a metric suite's arithmetic; the D x D algebra
they feed (eigendecompositions, small solves) stays in float64 NumPy on the host, as on the CPU
path (:mod:`transferdet.metrics.rows`). Everything runs in float64, so the scores agree with the
CPU path to rounding (tests/test_device_metrics.py runs this code on CPU tensors). TransRate's
per-class log-determinants are Cholesky factorisations on the device, falling back to LU
(``slogdet``) where a class's matrix is not positive definite in floating point, as on the host.
"""

from __future__ import annotations

import numpy as np
import torch

from transferdet.metrics._checks import check_feature_shape, check_largest, constant_features
from transferdet.metrics.rows import BLOCK_ROWS


def device_features(features: torch.Tensor, name: str = "features") -> torch.Tensor:
    """``features`` as float64 on their device, with the checks :func:`~transferdet.metrics._checks.as_features`
    makes on the host (shape, at least 2 rows, finite, below the overflow limit)."""
    check_feature_shape(tuple(features.shape), name)
    tensor = features.to(torch.float64)
    check_largest(float(tensor.abs().max()), lambda: int((~torch.isfinite(tensor)).any(dim=1).sum()), name)
    return tensor


class DeviceRows:
    """Features ``F`` (N x D, a float64 torch tensor on any device) and the passes over them;
    every method takes and returns float64 NumPy arrays, as :class:`~transferdet.metrics.rows.HostRows`."""

    def __init__(self, features: torch.Tensor) -> None:
        self.tensor = features
        self.n, self.d = features.shape

    def _up(self, array: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(array, dtype=np.float64), device=self.tensor.device)

    @staticmethod
    def _down(tensor: torch.Tensor) -> np.ndarray:
        return tensor.cpu().numpy()

    def host(self) -> np.ndarray:
        return self._down(self.tensor)

    def check_varying(self) -> None:
        if not bool((self.tensor != self.tensor[0]).any()):
            raise constant_features(self.n)

    def times(self, matrix: np.ndarray) -> np.ndarray:
        return self._down(self.tensor @ self._up(matrix))

    def weighted_sums(self, weights: np.ndarray) -> np.ndarray:
        return self._down(self._up(weights) @ self.tensor)

    def squared_norms(self) -> np.ndarray:
        return self._down((self.tensor * self.tensor).sum(dim=1))

    def row_logsumexp(self) -> np.ndarray:
        return self._down(torch.logsumexp(self.tensor, dim=1))

    def scaled_gram(self, centre: np.ndarray, scale: np.ndarray) -> np.ndarray:
        centre_t, scale_t = self._up(centre), self._up(scale)
        total = torch.zeros(self.d, self.d, dtype=torch.float64, device=self.tensor.device)
        for start in range(0, self.n, BLOCK_ROWS):
            block = (self.tensor[start : start + BLOCK_ROWS] - centre_t) * scale_t[start : start + BLOCK_ROWS, None]
            total += block.T @ block
        return self._down(total)

    def gram(self) -> np.ndarray:
        return self._down(self.tensor.T @ self.tensor)

    def class_pass(
        self, labels: np.ndarray, counts: np.ndarray, rate_eps: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Class sums, the centred Gram matrix and TransRate's per-class coding rates (see
        :meth:`~transferdet.metrics.rows.HostRows.class_pass`), each class's work on the device."""
        labels_t = torch.as_tensor(labels, device=self.tensor.device)
        sums = torch.zeros(len(counts), self.d, dtype=torch.float64, device=self.tensor.device)
        sums.index_add_(0, labels_t, self.tensor)
        mean = sums.sum(dim=0) / self.n
        total = torch.zeros(self.d, self.d, dtype=torch.float64, device=self.tensor.device)
        rates = np.empty(len(counts))
        eye = torch.eye(self.d, dtype=torch.float64, device=self.tensor.device)
        for c in range(len(counts)):
            part = self.tensor[labels_t == c] - mean
            class_gram = part.T @ part
            total += class_gram
            matrix = eye + class_gram / (len(part) * rate_eps)
            factor, info = torch.linalg.cholesky_ex(matrix)
            if int(info) == 0:
                rates[c] = float(torch.log(factor.diagonal()).sum())
            else:
                rates[c] = 0.5 * float(torch.linalg.slogdet(matrix)[1])
        return self._down(sums), self._down(total), rates
