"""The metric suite in torch on a device (``suite(tensor)`` / ``suite(..., device=...)``): the same
code runs here on CPU tensors, and on a GPU where there is one. It must give the reference values
and the NumPy path's scores, and refuse bad input with the same messages."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from test_metrics import CASES, vectors  # noqa: F401 - the reference cases, a pytest fixture
from transferdet.metrics import MetricInputError, suite
from transferdet.metrics.device_rows import DeviceRows
from transferdet.metrics.rows import HostRows
from transferdet.metrics.suite import feature_rows

# suite name -> reference key in ../shared/testvectors
REFERENCE_KEYS = {
    "logme": "logme_tllib",
    "logme_regression": "logme_tllib_regression_boxes",
    "h_score": "h_score_tllib",
    "reg_h_score": "regularized_h_score_tllib",
    "transrate": "transrate_tllib",
    "sfda": "sfda_tencentarc",
}
DEVICE_METRICS = ["logme", "h_score", "reg_h_score", "transrate", "logme_regression", "tlogme", "sfda", "etran", "gbc"]
DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]


def _relative_gap(a: dict[str, float], b: dict[str, float]) -> float:
    return max(abs(a[k] - b[k]) / max(abs(b[k]), 1e-300) for k in b)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", CASES)
def test_device_suite_gives_the_references_and_the_host_scores(case, device, vectors):  # noqa: F811
    cases, scores = vectors
    data = cases[case]
    tensor = torch.from_numpy(data["features"]).to(device)
    on_device = suite(tensor, data["labels"], data["boxes"], metrics=DEVICE_METRICS)
    for name, key in REFERENCE_KEYS.items():
        assert on_device[name] == pytest.approx(scores[case]["scores"][key], rel=1e-6), name
    on_host = suite(data["features"], data["labels"], data["boxes"], metrics=DEVICE_METRICS)
    assert on_device != on_host or device == "cuda"  # a different code path: rounding differs
    assert _relative_gap(on_device, on_host) < 1e-9


def test_device_argument_moves_numpy_features_and_cpu_keeps_the_host_path():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(300, 40))
    assert isinstance(feature_rows(features), HostRows)
    assert isinstance(feature_rows(features, "cpu"), HostRows)
    assert isinstance(feature_rows(torch.from_numpy(features)), DeviceRows)
    meta = feature_rows(torch.from_numpy(features).float(), "cpu")
    assert isinstance(meta, DeviceRows) and meta.tensor.dtype == torch.float64  # scored in float64
    if torch.cuda.is_available():
        assert feature_rows(features, "cuda").tensor.device.type == "cuda"


def test_device_transrate_falls_back_to_lu_where_cholesky_fails(monkeypatch):
    rng = np.random.default_rng(1)
    features, labels = rng.normal(size=(400, 32)), rng.integers(3, size=400)
    expected = suite(features, labels, metrics=["transrate"])["transrate"]

    def fail(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.zeros_like(matrix), torch.tensor(1)

    monkeypatch.setattr(torch.linalg, "cholesky_ex", fail)
    got = suite(torch.from_numpy(features), labels, metrics=["transrate"])["transrate"]
    assert got == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize(
    ("features", "message"),
    [
        (np.ones((50, 8)), "every column is constant"),
        (
            np.where(np.arange(400).reshape(50, 8) == 17, np.nan, 1.0 * np.arange(400).reshape(50, 8)),
            "1 row(s) hold NaN",
        ),
        (np.full((50, 8), 1e120) * np.arange(1, 9), "overflow their Gram matrix"),
        (np.arange(8.0).reshape(1, 8), "need at least 2 samples"),
    ],
)
def test_device_suite_refuses_what_the_host_refuses(features, message):
    labels = np.arange(len(features)) % 2
    for given in (features, torch.from_numpy(features)):
        with pytest.raises(MetricInputError, match=message.replace("(", r"\(").replace(")", r"\)")):
            suite(given, labels, metrics=["logme"])


def test_scoring_hands_its_device_to_every_shared_pass(monkeypatch):
    # the shared pass and the per-class one (a class with one box is left out of SFDA, GBC, ETran)
    from transferdet.transfer import scoring

    seen = []

    def spy(*args, **kwargs):
        seen.append(args[5] if len(args) > 5 else kwargs.get("device"))
        return suite(*args[:5])

    monkeypatch.setattr(scoring, "suite", spy)
    rng = np.random.default_rng(2)
    labels = np.array([0] * 30 + [1] * 30 + [2])
    features, targets = rng.normal(size=(61, 12)), rng.random((61, 4))
    outcomes = scoring.score_features(features, labels, targets, None, ["logme", "sfda"], ["a", "b", "c"], "cuda:1")
    assert seen == ["cuda:1", "cuda:1"]
    assert outcomes["sfda"].note == "sfda: class 'c' has 1 box(es); left out of this metric"
