"""Several metrics on one feature matrix, sharing the Gram matrix and its eigendecomposition."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from transferdet.metrics._checks import MetricInputError, as_features, as_labels, as_targets
from transferdet.metrics.baselines import knn_accuracy, linear_probe_accuracy
from transferdet.metrics.device_rows import DeviceRows, device_features
from transferdet.metrics.etran import etran_from
from transferdet.metrics.gbc import gbc_from
from transferdet.metrics.gram import GramStats, Rows
from transferdet.metrics.hscore import h_score_from, reg_h_score_from
from transferdet.metrics.lda import sfda_from
from transferdet.metrics.leep import leep, nce
from transferdet.metrics.logme import logme_from, logme_regression_from
from transferdet.metrics.rows import HostRows
from transferdet.metrics.transrate import EPS as TRANSRATE_EPS
from transferdet.metrics.transrate import transrate_from

FEATURE_METRICS = ("logme", "h_score", "reg_h_score", "transrate", "sfda", "etran", "gbc")
BOX_METRICS = ("logme_regression", "tlogme")
SOURCE_METRICS = ("leep", "nce")
BASELINES = ("knn", "linear_probe")  # the sceptic's baselines on the same features (metrics/baselines.py)
METRICS = (*FEATURE_METRICS[:4], *BOX_METRICS, *FEATURE_METRICS[4:], *SOURCE_METRICS, *BASELINES)
GRAM_METRICS = (*FEATURE_METRICS, *BOX_METRICS)  # computed from the shared Gram pass
SHARED_METRICS = (*GRAM_METRICS, *BASELINES)  # what scoring computes in one suite call
# a scatter matrix, a Gaussian or a stratified fold per class: two samples of each
PER_CLASS_METRICS = ("sfda", "etran", "gbc", *BASELINES)


def available_metrics(has_boxes: bool, has_source: bool) -> list[str]:
    return [m for m in METRICS if (has_boxes or m not in BOX_METRICS) and (has_source or m not in SOURCE_METRICS)]


def feature_rows(features: np.ndarray | torch.Tensor, device: str | torch.device | None = None) -> Rows:
    """The features, checked, with the passes the metrics make over them: in NumPy on the host, or
    in torch on a device (``features`` a tensor, or ``device`` other than the CPU)."""
    if isinstance(features, torch.Tensor) or (device is not None and torch.device(device).type != "cpu"):
        tensor = torch.as_tensor(features)
        return DeviceRows(device_features(tensor if device is None else tensor.to(device)))
    return HostRows(as_features(features))


def suite(
    features: np.ndarray | torch.Tensor,
    labels: np.ndarray,
    boxes: np.ndarray | None = None,
    source_probs: np.ndarray | None = None,
    metrics: Sequence[str] | None = None,
    device: str | torch.device | None = None,
) -> dict[str, float]:
    """The named ``metrics`` (default: every one the inputs allow) as ``{name: score}``.

    Every feature metric shares one pass over the features (the Gram matrix, class sums and
    TransRate's per-class Gram matrices) and one eigendecomposition; SFDA adds one product of its
    re-mixed features, GBC the 64 leading eigenvectors of the centred Gram matrix. The passes over
    the N feature rows run in torch on ``device`` (or on the device of ``features`` given as a
    tensor: a GPU, where extraction left them), the D x D algebra in float64 NumPy either way;
    the k-NN and linear-probe baselines (scikit-learn) always run on the host.
    """
    f = feature_rows(features, device)
    names = list(metrics) if metrics is not None else available_metrics(boxes is not None, source_probs is not None)
    unknown = [m for m in names if m not in METRICS]
    if unknown:
        raise MetricInputError(f"unknown metric(s) {', '.join(unknown)} (known: {', '.join(METRICS)})")
    if boxes is None and any(m in BOX_METRICS for m in names):
        raise MetricInputError(f"{', '.join(m for m in names if m in BOX_METRICS)} need box targets")
    if source_probs is None and any(m in SOURCE_METRICS for m in names):
        raise MetricInputError("leep and nce need a source classifier's probabilities")
    y = as_labels(labels, f.n, min_per_class=2 if set(names) & set(PER_CLASS_METRICS) else 1)
    targets = as_targets(boxes, f.n, "boxes") if boxes is not None else None
    # the one Gram pass, only when a metric that uses it is asked for
    stats = (
        GramStats.of(f, y, rate_eps=TRANSRATE_EPS if "transrate" in names else None)
        if set(names) & set(GRAM_METRICS)
        else None
    )

    def tlogme() -> float:
        return 0.5 * (logme_from(stats) + logme_regression_from(stats, f, targets))

    compute: dict[str, Callable[[], float]] = {
        "logme": lambda: logme_from(stats),
        "logme_regression": lambda: logme_regression_from(stats, f, targets),
        "tlogme": tlogme,
        "h_score": lambda: h_score_from(stats),
        "reg_h_score": lambda: reg_h_score_from(stats, f),
        "transrate": lambda: transrate_from(stats),
        "sfda": lambda: sfda_from(stats, f, y),
        "etran": lambda: etran_from(stats, f, y, targets),
        "gbc": lambda: gbc_from(stats, f, y),
        "leep": lambda: leep(source_probs, y),
        "nce": lambda: nce(np.asarray(source_probs).argmax(axis=1), y),
        "knn": lambda: knn_accuracy(f.host(), y),
        "linear_probe": lambda: linear_probe_accuracy(f.host(), y),
    }
    results: dict[str, float] = {}
    for name in names:
        if name == "tlogme" and "logme" in results and "logme_regression" in results:
            results[name] = 0.5 * (results["logme"] + results["logme_regression"])
        else:
            results[name] = compute[name]()
    return results
