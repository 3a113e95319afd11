"""Metrics that read a source classifier's predictions.

LEEP: Nguyen, Hassner, Seeger, Archambeau, "LEEP: A New Measure to Evaluate Transferability of
Learned Representations", ICML 2020: the mean log-likelihood of the "expected empirical
predictor" p(y | x) = sum_z p(y | z) p(z | x), with p(y | z) from the joint of target labels and
source predictions (tllib ``leep.py``).
NCE: Tran, Nguyen, Hassner, "Transferability and Hardness of Supervised Classification Tasks",
ICCV 2019: minus the conditional entropy H(Y | Z) of target labels given hard source labels
(tllib ``nce.py``, with its 1e-20 guard inside the logarithm).
"""

from __future__ import annotations

import numpy as np

from transferdet.metrics._checks import MetricInputError, as_labels
from transferdet.metrics.rows import class_sums


def leep(source_probs: np.ndarray, labels: np.ndarray) -> float:
    """LEEP of source-classifier probabilities ``source_probs`` (N x C_s) for target ``labels``."""
    probs = np.asarray(source_probs, dtype=np.float64)
    if probs.ndim != 2 or len(probs) == 0 or not (np.isfinite(probs.max()) and probs.min() >= 0):
        raise MetricInputError("source_probs must be an (N, C_s) array of finite probabilities")
    y = as_labels(labels, len(probs))
    n = len(probs)
    joint = class_sums(probs, y, int(y.max()) + 1) / n
    marginal = joint.sum(axis=0, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        conditional = np.where(marginal > 0, joint / marginal, 0.0).T  # p(y | z): (C_s, C_t)
    empirical = probs @ conditional
    return float(np.mean(np.log(empirical[np.arange(n), y])))


def nce(source_labels: np.ndarray, labels: np.ndarray) -> float:
    """NCE of hard source labels (N,) for target ``labels`` (N,)."""
    z = np.asarray(source_labels).reshape(-1)
    y = as_labels(labels, len(z))
    _, z = np.unique(z, return_inverse=True)
    n = len(z)
    joint = np.zeros((int(y.max()) + 1, int(z.max()) + 1))
    np.add.at(joint, (y, z), 1.0 / n)
    p_z = joint.sum(axis=0)
    conditional = (joint / p_z).T + 1e-20  # p(y | z) for each source label that occurs
    entropy = -(conditional * np.log(conditional)).sum(axis=1)
    return float(-(entropy * p_z).sum())
