"""Transferability metrics against the reference values in ../shared/testvectors, and their guards."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import SHARED, require_shared
from transferdet import metrics
from transferdet.metrics import MetricInputError

VECTORS = SHARED / "testvectors"
CASES = (
    "clustered_n600_d32_c5",
    "nosignal_n500_d64_c7",
    "imbalanced_n400_d16_c3",
    "small_n60_d128_c4",
    "wide_n2000_d256_c10",
)
TOLERANCE = 1e-6

# our function -> (reference key, how it is called on a case)
REFERENCES = {
    "logme": ("logme_tllib", lambda c: metrics.logme(c["features"], c["labels"])),
    "logme_regression": ("logme_tllib_regression_boxes", lambda c: metrics.logme_regression(c["features"], c["boxes"])),
    "h_score": ("h_score_tllib", lambda c: metrics.h_score(c["features"], c["labels"])),
    "reg_h_score": ("regularized_h_score_tllib", lambda c: metrics.reg_h_score(c["features"], c["labels"])),
    "transrate": ("transrate_tllib", lambda c: metrics.transrate(c["features"], c["labels"])),
    "leep": ("leep_tllib", lambda c: metrics.leep(c["source_probs"], c["labels"])),
    "nce": ("nce_tllib", lambda c: metrics.nce(c["source_probs"].argmax(axis=1), c["labels"])),
    "sfda": ("sfda_tencentarc", lambda c: metrics.sfda(c["features"], c["labels"])),
    "etran_lda": ("etran_lda_score", lambda c: metrics.etran_lda(c["features"], c["labels"])),
    "etran_energy": ("etran_energy_bottom_0p5pct", lambda c: metrics.etran_energy(c["features"])),
}


@pytest.fixture(scope="module")
def vectors():
    require_shared(VECTORS)
    arrays = np.load(VECTORS / "transferability.npz")
    scores = json.loads((VECTORS / "transferability.json").read_text())
    cases = {
        name: {key: arrays[f"{name}/{key}"] for key in ("features", "labels", "boxes", "source_probs")}
        for name in CASES
    }
    return cases, scores


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("metric", sorted(REFERENCES))
def test_agrees_with_reference(metric, case, vectors):
    cases, scores = vectors
    key, call = REFERENCES[metric]
    expected = scores[case]["scores"][key]
    if np.isnan(expected):
        pytest.skip(f"the reference returned NaN for {case} ({key}); see test_energy_fallback")
    assert call(cases[case]) == pytest.approx(expected, rel=TOLERANCE)


def test_logme_is_right_when_n_is_below_d(vectors):
    """For N < D, the tllib evidence (full (D/2) log alpha) is right; thuml's fixed point is not."""
    cases, scores = vectors
    case, reference = cases["small_n60_d128_c4"], scores["small_n60_d128_c4"]["scores"]
    value = metrics.logme(case["features"], case["labels"])
    assert value == pytest.approx(reference["logme_tllib"], rel=TOLERANCE)
    assert abs(value - reference["logme_thuml_fixed_point"]) > 1.0


def test_tlogme_is_the_mean_of_class_and_box_logme(vectors):
    cases, scores = vectors
    for name in CASES:
        expected = 0.5 * (
            scores[name]["scores"]["logme_tllib"] + scores[name]["scores"]["logme_tllib_regression_boxes"]
        )
        case = cases[name]
        assert metrics.tlogme(case["features"], case["labels"], case["boxes"]) == pytest.approx(expected, rel=TOLERANCE)


def test_suite_equals_the_single_metrics(vectors):
    cases, _ = vectors
    case = cases["clustered_n600_d32_c5"]
    together = metrics.suite(case["features"], case["labels"], case["boxes"], case["source_probs"])
    assert set(together) == set(metrics.METRICS)
    singles = {
        "logme": metrics.logme(case["features"], case["labels"]),
        "logme_regression": metrics.logme_regression(case["features"], case["boxes"]),
        "tlogme": metrics.tlogme(case["features"], case["labels"], case["boxes"]),
        "h_score": metrics.h_score(case["features"], case["labels"]),
        "reg_h_score": metrics.reg_h_score(case["features"], case["labels"]),
        "transrate": metrics.transrate(case["features"], case["labels"]),
        "sfda": metrics.sfda(case["features"], case["labels"]),
        "etran": metrics.etran(case["features"], case["labels"], case["boxes"]),
        "gbc": metrics.gbc(case["features"], case["labels"]),
        "leep": metrics.leep(case["source_probs"], case["labels"]),
        "nce": metrics.nce(case["source_probs"].argmax(axis=1), case["labels"]),
    }
    for name, value in singles.items():
        assert together[name] == pytest.approx(value, rel=1e-9), name
    assert metrics.suite(case["features"], case["labels"]).keys() == set(metrics.METRICS) - {
        "logme_regression",
        "tlogme",
        "leep",
        "nce",
    }


def test_labels_are_remapped_to_contiguous_ids(vectors):
    cases, _ = vectors
    case = cases["imbalanced_n400_d16_c3"]
    sparse = np.array([3, 10, 42])[case["labels"]]
    for name in ("logme", "h_score", "reg_h_score", "transrate", "sfda", "gbc", "etran_lda"):
        function = getattr(metrics, name)
        assert function(case["features"], sparse) == pytest.approx(
            function(case["features"], case["labels"]), rel=1e-12
        )


def test_energy_fallback_for_small_n(vectors):
    """The reference returns NaN below 200 samples (it takes 0 of them); we take the lowest one."""
    cases, scores = vectors
    case = cases["small_n60_d128_c4"]
    assert np.isnan(scores["small_n60_d128_c4"]["scores"]["etran_energy_bottom_0p5pct"])
    from scipy.special import logsumexp

    assert metrics.etran_energy(case["features"]) == pytest.approx(logsumexp(case["features"], axis=1).min())


def test_gbc_prefers_separated_classes(vectors):
    cases, _ = vectors
    separated = metrics.gbc(cases["clustered_n600_d32_c5"]["features"], cases["clustered_n600_d32_c5"]["labels"])
    mixed = metrics.gbc(cases["nosignal_n500_d64_c7"]["features"], cases["nosignal_n500_d64_c7"]["labels"])
    assert -1.0 < separated <= 0.0 and mixed < -10.0
    order = np.random.default_rng(0).permutation(600)
    case = cases["clustered_n600_d32_c5"]
    assert metrics.gbc(case["features"][order], case["labels"][order]) == pytest.approx(separated, rel=1e-9)


@pytest.mark.parametrize(
    ("features", "labels", "message"),
    [
        (np.ones((10, 3)), np.zeros(10), "a single class"),
        (np.ones((1, 3)), np.zeros(1), "at least 2 samples"),
        (np.vstack([np.ones((4, 3)), [[np.nan, 0, 0]]]), np.arange(5) % 2, "NaN or infinite"),
        (np.ones((4, 3)), np.arange(3), "3 labels for 4 samples"),
        (np.ones(5), np.arange(5) % 2, r"must be an \(N, D\) array"),
    ],
)
def test_degenerate_input_is_a_clear_error(features, labels, message):
    for function in (metrics.logme, metrics.h_score, metrics.transrate, metrics.sfda):
        with pytest.raises(MetricInputError, match=message):
            function(features, labels)


def test_metrics_needing_two_per_class_say_so():
    rng = np.random.default_rng(0)
    features, labels = rng.normal(size=(9, 4)), np.array([0, 0, 0, 0, 1, 1, 1, 1, 2])
    for function in (metrics.sfda, metrics.gbc, metrics.etran_lda):
        with pytest.raises(MetricInputError, match="a class has 1 sample"):
            function(features, labels)
    assert np.isfinite(metrics.logme(features, labels))  # LogME is fine with a single-sample class


def test_suite_checks_what_it_is_asked(vectors):
    cases, _ = vectors
    case = cases["clustered_n600_d32_c5"]
    with pytest.raises(MetricInputError, match="need box targets"):
        metrics.suite(case["features"], case["labels"], metrics=["tlogme"])
    with pytest.raises(MetricInputError, match="source classifier"):
        metrics.suite(case["features"], case["labels"], metrics=["leep"])
    with pytest.raises(MetricInputError, match="unknown metric"):
        metrics.suite(case["features"], case["labels"], metrics=["accuracy"])


def test_suite_is_bit_identical_run_to_run():
    # the class pass runs on two threads: its sums must not depend on their timing
    rng = np.random.default_rng(0)
    features, labels = rng.normal(size=(3000, 256)), rng.integers(7, size=3000)
    first = metrics.suite(features, labels, metrics=["logme", "h_score", "transrate"])
    assert all(metrics.suite(features, labels, metrics=["logme", "h_score", "transrate"]) == first for _ in range(10))


def test_ordered_sum_adds_in_index_order_whatever_the_arrival_order():
    from transferdet.metrics.rows import _OrderedSum

    rng = np.random.default_rng(2)
    # magnitudes far apart, so a different order of addition would change the last bits
    parts = [rng.normal(size=(4, 4)) * 10.0 ** rng.integers(-8, 8) for _ in range(6)]
    in_order = np.zeros((4, 4))
    for part in parts:
        in_order += part
    shuffled = _OrderedSum(np.zeros((4, 4)))
    for index in (3, 1, 0, 5, 2, 4):
        matrix = parts[index].copy()
        shuffled.add(index, matrix)
        matrix[:] = np.nan  # the caller reuses its matrix at once (the Cholesky overwrites it)
    assert np.array_equal(shuffled.value, in_order)


def test_transrate_falls_back_to_lu_on_the_original_matrix(monkeypatch):
    # a class matrix that is not positive definite in floating point: the Cholesky has overwritten part
    # of it by then, so the fallback must start again from the class's rows
    from transferdet.metrics import rows

    rng = np.random.default_rng(1)
    features, labels = rng.normal(size=(400, 32)), rng.integers(3, size=400)
    expected = metrics.transrate(features, labels)

    def destroy_and_fail(matrix):
        matrix[:] = 0.0
        return False

    monkeypatch.setattr(rows, "cholesky_in_place", destroy_and_fail)
    assert metrics.transrate(features, labels) == pytest.approx(expected, rel=1e-9)


def _gbc_by_pca(features: np.ndarray, labels: np.ndarray, dimensions: int = 64) -> float:
    """GBC as google-research's stable_transfer computes it: scikit-learn's PCA (an SVD of the
    centred features), per-class means and variances, the sum over ordered class pairs."""
    from sklearn.decomposition import PCA

    k = min(dimensions, features.shape[1], features.shape[0])
    reduced = PCA(n_components=k, svd_solver="full").fit_transform(features) if features.shape[1] > k else features
    classes = range(int(labels.max()) + 1)
    means = np.stack([reduced[labels == c].mean(axis=0) for c in classes])
    variances = np.stack([reduced[labels == c].var(axis=0) for c in classes]) + 1e-12
    total = 0.0
    for i in classes:
        for j in classes:
            if i != j:
                pooled = (variances[i] + variances[j]) / 2
                log_ratio = np.log(pooled).sum() - 0.5 * (np.log(variances[i]).sum() + np.log(variances[j]).sum())
                total += np.exp(-(0.125 * ((means[i] - means[j]) ** 2 / pooled).sum() + 0.5 * log_ratio))
    return -total


@pytest.mark.parametrize("case", CASES)
def test_gbc_from_the_shared_gram_matrix_equals_gbc_by_pca(case, vectors):
    # our PCA axes are the leading eigenvectors of the shared centred Gram matrix, not an SVD of F
    cases, _ = vectors
    features, labels = cases[case]["features"], cases[case]["labels"]
    assert metrics.gbc(features, labels) == pytest.approx(_gbc_by_pca(features, labels), rel=1e-6, abs=1e-12)


@pytest.mark.parametrize("case", ["clustered_n600_d32_c5", "nosignal_n500_d64_c7", "wide_n2000_d256_c10"])
def test_etran_regression_in_the_eigenbasis_equals_least_squares(case, vectors):
    cases, _ = vectors
    features, boxes = cases[case]["features"], cases[case]["boxes"]
    solution, *_ = np.linalg.lstsq(features, boxes, rcond=None)
    expected = -np.mean((features @ solution - boxes) ** 2)
    assert metrics.etran_regression(features, boxes) == pytest.approx(expected, rel=1e-9)


def test_etran_regression_fits_exactly_when_n_is_below_d(vectors):
    cases, _ = vectors
    case = cases["small_n60_d128_c4"]
    assert abs(metrics.etran_regression(case["features"], case["boxes"])) < 1e-12 * np.mean(case["boxes"] ** 2)


def test_blocked_gram_equals_the_whole_product():
    from transferdet.metrics.rows import BLOCK_ROWS, blocked_gram

    rng = np.random.default_rng(4)
    x = rng.normal(size=(2 * BLOCK_ROWS + 37, 48))  # two whole blocks and a partial one

    def rows_of_x(rows: slice, block: np.ndarray) -> None:
        block[:] = x[rows]

    gram = blocked_gram(len(x), 48, rows_of_x)
    assert np.allclose(gram, x.T @ x, rtol=1e-12, atol=1e-9) and np.array_equal(gram, gram.T)


def test_baselines_separate_what_is_separable_and_nothing_else(vectors):
    cases, _ = vectors
    clustered, noise = cases["clustered_n600_d32_c5"], cases["nosignal_n500_d64_c7"]
    for baseline in (metrics.knn_accuracy, metrics.linear_probe_accuracy):
        assert baseline(clustered["features"], clustered["labels"]) > 0.95
        chance = np.bincount(noise["labels"]).max() / len(noise["labels"])
        assert baseline(noise["features"], noise["labels"]) < chance + 0.1
        # seeded folds: the same number twice; a permutation of the rows moves it by fold assignment only
        assert baseline(noise["features"], noise["labels"]) == baseline(noise["features"], noise["labels"])


def test_baselines_use_fewer_folds_for_a_small_class_and_refuse_a_single_box():
    rng = np.random.default_rng(1)
    labels = np.array([0] * 20 + [1] * 20 + [2] * 2)
    features = rng.normal(size=(42, 6)) * 0.1 + np.eye(6)[labels] * 5.0  # each class along its own axis
    # two folds (class 2 has two boxes), 21 test boxes each: a class-2 box has one class-2 box among
    # its 5 neighbours and is misclassified, every other box is right: 20/21
    assert metrics.knn_accuracy(features, labels) == pytest.approx(20 / 21)
    assert metrics.linear_probe_accuracy(features, labels) >= 20 / 21 - 1e-12
    with pytest.raises(MetricInputError, match="a class has 1 sample"):
        metrics.linear_probe_accuracy(features[:41], labels[:41])


def test_the_linear_probe_keeps_scikit_learns_convergence_warning_to_itself(vectors, monkeypatch):
    # on real wide features (bccd's MobileNetV2 c5) L-BFGS stops at its iteration limit and
    # scikit-learn warns once per fold, a screenful under rank's table; make every fit warn here
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    fit = LogisticRegression.fit

    def warning_fit(self, *args, **kwargs):
        warnings.warn(
            "lbfgs failed to converge: TOTAL NO. OF ITERATIONS REACHED LIMIT", ConvergenceWarning, stacklevel=2
        )
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(LogisticRegression, "fit", warning_fit)
    cases, _ = vectors
    case = cases["clustered_n600_d32_c5"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        accuracy = metrics.linear_probe_accuracy(case["features"], case["labels"])
    assert accuracy > 0.95 and not [w for w in caught if issubclass(w.category, ConvergenceWarning)]
