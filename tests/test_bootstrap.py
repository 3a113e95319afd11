"""Bootstrap intervals of the pooled correlations, paired gains over the best baseline, and the
pretrained-only scope, down to the report and correlations.csv."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from scipy import stats

from transferdet.bench.bootstrap import Evidence, evidence, kendall_tau_b, pooled, summarise
from transferdet.bench.correlate import POOLED, correlate
from transferdet.bench.report import build_report
from transferdet.bench.report_data import PRETRAINED, scopes
from transferdet.bench.store import Job, Store


def _rows(per_target: dict[str, dict[str, tuple[float, list[float]]]], metric: str = "m") -> tuple[list, list]:
    """Score and AP rows from ``{target: {model: (score, [AP of each trial])}}``."""
    scores, ap = [], []
    for dataset, models in per_target.items():
        for model, (score, trials) in models.items():
            scores.append(
                {
                    "dataset": dataset,
                    "model": model,
                    "metric": metric,
                    "layer": "c5",
                    "features": "local",
                    "score": score,
                }
            )
            ap += [
                {"dataset": dataset, "model": model, "trial": t, "key": "AP50", "value": v}
                for t, v in enumerate(trials)
            ]
    return scores, ap


def test_kendall_tau_b_matches_scipy_with_ties():
    rng = np.random.default_rng(3)
    for _ in range(20):
        x, y = rng.integers(0, 4, 12).astype(float), rng.normal(size=12).round(1)
        assert kendall_tau_b(x, y) == pytest.approx(stats.kendalltau(x, y).statistic, abs=1e-12)


def test_the_bootstrap_pools_as_the_correlations_do():
    rng = np.random.default_rng(0)
    table = {d: {f"s{i}": (rng.normal(), [rng.normal()]) for i in range(5)} for d in "abc"}
    scores, ap = _rows(table)
    (summary,) = summarise(evidence(scores, ap, "AP50"), "all sources", [], count=10)
    reference = next(c for c in correlate(scores, ap, "AP50") if c.dataset == POOLED)
    for name in ("kendall", "weighted_tau", "pearson", "top1_regret"):
        assert summary.measures[name].value == pytest.approx(getattr(reference, name), abs=1e-12)
    parts = [(np.array([1.0, 2.0, 3.0]), np.array([0.1, 0.3, 0.2]))]
    assert pooled(parts)["kendall"] == pytest.approx(1 / 3)


def test_resampling_targets_spans_what_the_targets_disagree_on():
    # a metric right on one target and exactly wrong on the other: a replicate that draws one target
    # twice (probability 1/4 each) gives tau 1 or -1, so the 90% interval is [-1, 1]
    right = {"x": (1.0, [0.1]), "y": (2.0, [0.2]), "z": (3.0, [0.3])}
    wrong = {"x": (3.0, [0.1]), "y": (2.0, [0.2]), "z": (1.0, [0.3])}
    scores, ap = _rows({"a": right, "b": wrong})
    (summary,) = summarise(evidence(scores, ap, "AP50"), "all sources", [], count=400)
    tau = summary.measures["kendall"]
    assert tau.value == pytest.approx(0.0) and (tau.low, tau.high) == (-1.0, 1.0)
    agreeing = _rows({"a": right, "b": right})
    (sure,) = summarise(evidence(*agreeing, "AP50"), "all sources", [], count=400)
    assert (sure.measures["kendall"].low, sure.measures["kendall"].high) == (1.0, 1.0)


def test_resampling_trials_widens_the_interval_when_trials_disagree():
    # in the mean the scores' order is right (tau 1), but a replicate may draw x's 0.45 twice (above y)
    noisy = {"x": (1.0, [0.1, 0.45]), "y": (2.0, [0.3, 0.3]), "z": (3.0, [0.55, 0.15])}
    scores, ap = _rows({"a": noisy, "b": noisy})
    (summary,) = summarise(evidence(scores, ap, "AP50"), "all sources", [], count=400)
    tau = summary.measures["kendall"]
    assert tau.value == pytest.approx(1.0) and tau.high == pytest.approx(1.0) and tau.low < 0


def test_the_gain_over_the_best_baseline_is_paired():
    rng = np.random.default_rng(1)
    quality = {d: rng.normal(size=6) for d in "abcd"}
    trials = {
        d: {f"s{i}": [q + 0.3 * rng.normal(), q + 0.3 * rng.normal()] for i, q in enumerate(quality[d])} for d in "abcd"
    }
    rows = ([], [])
    for metric, noise in (("good", 0.1), ("copy", 0.1), ("size", 3.0)):
        seeded = np.random.default_rng(7 if metric != "size" else 8)  # "copy" scores exactly as "good"
        table = {d: {m: (float(np.mean(t)) + noise * seeded.normal(), t) for m, t in trials[d].items()} for d in "abcd"}
        scores, ap = _rows(table, metric)
        rows[0].extend(scores)
        rows[1].extend(ap if metric == "good" else [])
    summaries = {s.metric: s for s in summarise(evidence(*rows, "AP50"), "all sources", ["copy", "size"], count=300)}
    good = summaries["good"]
    assert good.against == "copy c5 local"  # the better of the two baselines
    assert (good.gain.value, good.gain.low, good.gain.high) == (0.0, 0.0, 0.0)  # the same scores: no gain, surely
    assert summaries["copy"].gain is None and summaries["size"].gain is None


def test_the_pretrained_scope_leaves_random_weights_out():
    config = {"models": [{"name": "r", "spec": "timm:a@random"}, {"name": "p", "spec": "timm:a@w.pth"}]}
    assert list(scopes(config)) == ["all sources"]  # one pretrained model: nothing to correlate
    config["models"].append({"name": "q", "spec": "timm:b@run"})
    config["models"].append({"name": "r2", "spec": "timm:b"})  # no weights named: random init
    assert scopes(config)[PRETRAINED] == {"p", "q"}


def test_the_report_and_correlations_csv_carry_intervals_in_both_scopes(tmp_path):
    models = {"rand": "timm:a@random", "p1": "timm:a@x.pth", "p2": "timm:b@x.pth", "p3": "timm:c@x.pth"}
    config = {
        "models": [{"name": n, "spec": s} for n, s in models.items()],
        "datasets": [{"name": d, "path": d} for d in "ab"],
        "metrics": ["logme", "knn"],
        "layers": ["c5"],
        "features": ["local"],
        "target": "AP50",
        "seed": 0,
    }
    quality = {"rand": 0.0, "p1": 0.4, "p2": 0.5, "p3": 0.6}
    jobs, results = [], []
    for d in "ab":
        for m, q in quality.items():
            rank = Job(f"r{d}{m}", "rank", d, m, None, "c5", "local", {})
            rows = [
                {"layer": "c5", "features": "local", "metric": "logme", "score": q, "reason": None},
                {
                    "layer": "c5",
                    "features": "local",
                    "metric": "knn",
                    "score": -q if m != "rand" else 0,
                    "reason": None,
                },
            ]
            # a static score comes on every layer: the analysis keeps it once
            rows += [{"layer": lv, "features": "local", "metric": "model_size", "score": 1.0} for lv in ("c4", "c5")]
            jobs.append(rank)
            results.append((rank, {"scores": rows}))
            for t in range(2):
                train = Job(f"t{d}{m}{t}", "train", d, m, t, None, None, {})
                jobs.append(train)
                results.append((train, {"ap": {"AP50": q}}))
    with Store(tmp_path / "results.sqlite") as store:
        store.add_jobs(jobs)
        for job, result in results:
            store.finished(job, result, 1.0)
        store.set_meta("config", config)
        store.set_meta("job_ids", [j.id for j in jobs])
    build_report(tmp_path)
    with open(tmp_path / "correlations.csv") as handle:
        records = list(csv.DictReader(handle))
    pooled = {(r["scope"], r["metric"]): r for r in records if r["dataset"] == POOLED}
    assert float(pooled[("all sources", "logme")]["kendall"]) == pytest.approx(1.0)
    assert float(pooled[("pretrained sources", "logme")]["kendall_low"]) == pytest.approx(1.0)
    assert float(pooled[("pretrained sources", "logme")]["gain"]) == pytest.approx(2.0)  # knn: tau -1 there
    assert pooled[("pretrained sources", "logme")]["against"] == "knn c5 local"
    assert all(r["kendall_low"] == "" for r in records if r["dataset"] != POOLED)
    sizes = [(r["dataset"], r["scope"], r["layer"]) for r in records if r["metric"] == "model_size"]
    assert sorted(sizes) == sorted(
        (d, s, "-") for d in ("a", "b", POOLED) for s in ("all sources", "pretrained sources")
    )
    report = (tmp_path / "report.md").read_text()
    assert "pretrained sources (90% bootstrap intervals)" in report and "within the pretrained sources" in report
    assert (tmp_path / "plots" / "intervals-1.png").is_file()


def test_the_bootstraps_weighted_tau_is_scipys_public_one_value_for_value() -> None:
    """The bootstrap calls scipy's weightedtau past its axis and NaN-policy wrapper (for speed):
    on 1-D inputs, ties included, it must give exactly what the public function gives."""
    from transferdet.bench.bootstrap import _WEIGHTED_TAU

    rng = np.random.default_rng(0)
    for size in (2, 3, 5, 8, 40):
        for _ in range(50):
            x, y = np.round(rng.normal(size=size), 1), rng.normal(size=size)
            public, direct = stats.weightedtau(x, y).statistic, _WEIGHTED_TAU(x, y).statistic
            assert public == direct or (np.isnan(public) and np.isnan(direct))


def _two_trials(first: list[list[float]], second: list[list[float]]) -> Evidence:
    """Targets t0, t1 ... with models m0, m1 ...: each model's two trial APs."""
    trials = {
        f"t{d}": {f"m{m}": np.array([a, b]) for m, (a, b) in enumerate(zip(x, y, strict=True))}
        for d, (x, y) in enumerate(zip(first, second, strict=True))
    }
    return Evidence({}, trials)


def test_the_pooled_noise_ceiling_is_trial_0_ranking_trial_1() -> None:
    from transferdet.bench.pooled_ceiling import pooled_noise_ceiling

    trial0 = [[0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.7, 0.9], [0.2, 0.1, 0.4, 0.3]]
    same = pooled_noise_ceiling(_two_trials(trial0, trial0), count=50)
    assert (same["kendall"].value, same["kendall"].low, same["kendall"].high) == (1.0, 1.0, 1.0)
    swapped = [[0.2, 0.1, 0.3, 0.4], [0.5, 0.6, 0.7, 0.9], [0.2, 0.1, 0.3, 0.4]]  # two pairs swapped
    for second in (swapped, [row[::-1] for row in trial0]):
        ceiling = pooled_noise_ceiling(_two_trials(trial0, second), count=50)
        assert ceiling["kendall"].value == pytest.approx(_pooled_tau(trial0, second))  # standardised, pooled
    assert ceiling["kendall"].value < 0 and ceiling["kendall"].low <= ceiling["kendall"].high


def _pooled_tau(first: list[list[float]], second: list[list[float]]) -> float:
    def z(rows: list[list[float]]) -> np.ndarray:
        return np.concatenate([(np.array(r) - np.mean(r)) / np.std(r) for r in rows])

    return stats.kendalltau(z(first), z(second)).statistic


def test_one_trial_has_no_noise_ceiling() -> None:
    from transferdet.bench.pooled_ceiling import pooled_noise_ceiling

    assert pooled_noise_ceiling(Evidence({}, {"t0": {"a": np.array([0.1]), "b": np.array([0.2])}})) == {}


def test_a_replicate_of_targets_with_one_model_each_is_undefined_not_an_error() -> None:
    from transferdet.bench.pooled_ceiling import pooled_noise_ceiling

    trials = {
        "t0": {"a": np.array([0.1, 0.2])},
        "t1": {m: np.array([v, v]) for m, v in zip("abc", (0.1, 0.2, 0.3), strict=True)},
    }
    ceiling = pooled_noise_ceiling(Evidence({}, trials), count=50)  # a quarter of the draws are t0 twice
    assert ceiling["kendall"].value == 1.0
