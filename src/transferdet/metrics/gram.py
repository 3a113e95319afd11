"""The statistics several metrics share, computed once per feature matrix.

One pass over the features gives the per-class Gram matrices (their sum is the full Gram
``F^T F``), the class sums and the mean; one symmetric eigendecomposition of ``F^T F`` then serves
LogME (You et al., ICML 2021), H-score (Bao et al., ICIP 2019), the regularised H-score (Ibrahim et
al., 2022) and TransRate's total coding rate (Huang et al., ICML 2022), each reduced to O(D) or
O(D^2 C) work in the eigenbasis. The decompositions run through ``torch.linalg`` (LAPACK from
MKL in PyTorch's CPU builds, faster here than NumPy's OpenBLAS for these sizes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import torch


@dataclass
class GramStats:
    """``F^T F`` and friends for features ``F`` (N x D) and contiguous labels (C classes)."""

    n: int
    d: int
    counts: np.ndarray  # (C,)
    class_sums: np.ndarray  # (C, D)
    gram: np.ndarray  # (D, D), uncentered
    class_grams: list[np.ndarray] | None = field(default=None, repr=False)  # of rows minus the global mean

    @classmethod
    def of(cls, features: np.ndarray, labels: np.ndarray, class_grams: bool = False) -> GramStats:
        n, d = features.shape
        num_classes = int(labels.max()) + 1
        counts = np.bincount(labels, minlength=num_classes)
        one_hot = np.zeros((num_classes, n))
        one_hot[labels, np.arange(n)] = 1.0
        sums = one_hot @ features
        if class_grams:
            # one copy of the features grouped by class and centred on the global mean: each class
            # is a contiguous view whose Gram matrix is what TransRate needs, and their sum plus
            # n mu mu^T is the uncentred Gram matrix
            mean = sums.sum(axis=0) / n
            grouped = features[np.argsort(labels, kind="stable")]
            grouped -= mean
            bounds = np.concatenate([[0], np.cumsum(counts)])
            grams = []
            gram = np.zeros((d, d))
            for a, b in zip(bounds[:-1], bounds[1:], strict=True):
                part = grouped[a:b]
                grams.append(part.T @ part)  # numpy uses a symmetric rank-k update here
                gram += grams[-1]
            gram += n * np.outer(mean, mean)
            return cls(n, d, counts, sums, gram, grams)
        return cls(n, d, counts, sums, features.T @ features)

    @property
    def mean(self) -> np.ndarray:
        return self.class_sums.sum(axis=0) / self.n

    @cached_property
    def eigen(self) -> tuple[np.ndarray, np.ndarray]:
        """Eigenvalues (clipped at 0, descending) and eigenvectors of the Gram matrix."""
        values, vectors = (t.numpy() for t in torch.linalg.eigh(torch.from_numpy(self.gram)))
        return np.clip(values[::-1], 0.0, None), np.ascontiguousarray(vectors[:, ::-1])

    @cached_property
    def projected_class_sums(self) -> np.ndarray:
        """``V^T F^T y_c`` for each class's indicator ``y_c``: (D, C)."""
        return self.eigen[1].T @ self.class_sums.T

    @cached_property
    def projected_mean(self) -> np.ndarray:
        return self.projected_class_sums.sum(axis=1) / self.n
