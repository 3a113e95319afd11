"""Transferability metrics: pure functions of float64 arrays (no I/O, no models).

Each function's module docstring cites the paper it comes from and the reference code it agrees
with (``../shared/testvectors``). Labels are remapped to contiguous ids; degenerate input is a
:class:`MetricInputError`, never a silent NaN.
"""

from transferdet.metrics._checks import MetricInputError
from transferdet.metrics.baselines import knn_accuracy, linear_probe_accuracy
from transferdet.metrics.etran import etran, etran_energy, etran_regression
from transferdet.metrics.gbc import gbc
from transferdet.metrics.hscore import h_score, reg_h_score
from transferdet.metrics.lda import etran_lda, sfda
from transferdet.metrics.leep import leep, nce
from transferdet.metrics.logme import logme, logme_regression, tlogme
from transferdet.metrics.suite import METRICS, available_metrics, suite
from transferdet.metrics.transrate import transrate

__all__ = [
    "METRICS",
    "MetricInputError",
    "available_metrics",
    "etran",
    "etran_energy",
    "etran_lda",
    "etran_regression",
    "gbc",
    "h_score",
    "knn_accuracy",
    "leep",
    "linear_probe_accuracy",
    "logme",
    "logme_regression",
    "nce",
    "reg_h_score",
    "sfda",
    "suite",
    "tlogme",
    "transrate",
]
