"""The benchmark: config validation, the store, kill/re-run, failures, the Ray executor, the report."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from bench_kit import MODELS, TINY_TRAINING, job_rows, results, rows_so_far, write_config
from transferdet.bench.config import load_config
from transferdet.bench.correlate import POOLED, correlate, correlation_measures, top1_regret
from transferdet.bench.runner import run_bench
from transferdet.bench.store import STORE_FILE
from transferdet.errors import TransferdetError


@pytest.fixture(scope="module")
def bench_folder(tmp_path_factory) -> Path:
    """A folder with a small synthetic dataset (shapes, 64 px) and a bench.yaml over two models."""
    from transferdet.data.synthetic import SynthConfig, synthesize

    folder = tmp_path_factory.mktemp("bench")
    synthesize(SynthConfig(source="shapes", images=24, size=64, seed=5), folder / "data")
    write_config(folder, MODELS)
    return folder


@pytest.fixture(scope="module")
def uninterrupted(bench_folder: Path) -> Path:
    out = bench_folder / "uninterrupted"
    outcome = run_bench(load_config(bench_folder / "bench.yaml"), out, device="cpu")
    assert (outcome.planned, outcome.ran, outcome.failed) == (4, 4, [])
    return out / STORE_FILE


def test_rerun_runs_nothing_more(bench_folder: Path, uninterrupted: Path) -> None:
    before = results(uninterrupted)
    outcome = run_bench(load_config(bench_folder / "bench.yaml"), uninterrupted.parent, device="cpu")
    assert (outcome.skipped, outcome.ran) == (4, 0)
    assert results(uninterrupted) == before
    assert all(row[3:5] == (1, 1) for row in job_rows(uninterrupted))
    scores, ap = before
    assert {(s[1], s[4]) for s in scores} == {
        (m["name"], k) for m in MODELS for k in ("logme", "tlogme", "h_score", "transrate")
    }
    assert {(a[1], a[3]) for a in ap} >= {(m["name"], "AP50") for m in MODELS}


def test_killed_bench_rerun_equals_uninterrupted(bench_folder: Path, uninterrupted: Path) -> None:
    out = bench_folder / "killed"
    command = [sys.executable, "-m", "transferdet", "bench", str(bench_folder / "bench.yaml"), "--out", str(out)]
    command += ["--device", "cpu"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store = out / STORE_FILE
    deadline = time.time() + 240
    killed_in_training = False
    try:
        # kill it in the middle of the first fine-tuning job, once that job has a checkpoint
        while process.poll() is None and time.time() < deadline:
            checkpoints = list((out / "runs").glob("*/*/checkpoint.pt")) if (out / "runs").exists() else []
            if checkpoints and any(r[0] == "train" and r[2] == "running" for r in rows_so_far(store)):
                process.send_signal(signal.SIGKILL)
                killed_in_training = True
                break
            time.sleep(0.02)
    finally:
        process.kill()
        process.wait()
    assert killed_in_training, "the bench finished before it could be killed halfway"
    assert any(r[2] == "running" for r in job_rows(store))  # what the kill left behind
    outcome = run_bench(load_config(bench_folder / "bench.yaml"), out, device="cpu")
    assert outcome.failed == []
    rows = job_rows(store)
    assert all(r[2] == "done" and r[4] == 1 for r in rows), rows  # no job completed twice
    assert max(r[3] for r in rows) == 2  # the killed job was started again, once
    assert results(store) == results(uninterrupted)


def test_failing_job_is_recorded_and_the_rest_go_on(bench_folder: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"not a checkpoint")
    models = [*MODELS[:1], {"name": "broken", "spec": f"timm:resnet10t@{broken}"}]
    (tmp_path / "data").symlink_to(bench_folder / "data")
    config = load_config(write_config(tmp_path, models, recipe_overrides={**TINY_TRAINING, "iterations": 2}))
    outcome = run_bench(config, tmp_path / "out", device="cpu")
    assert sorted(job.model for job, _ in outcome.failed) == ["broken", "broken"]
    assert all("broken.pth" in error for _, error in outcome.failed)
    rows = job_rows(tmp_path / "out" / STORE_FILE)
    assert [r[2] for r in rows if r[1] == "resnet10t"] == ["done", "done"]
    assert all(r[2] == "failed" and "broken.pth" in r[5] for r in rows if r[1] == "broken")
    # a re-run tries the failed jobs again and leaves the finished ones alone
    again = run_bench(config, tmp_path / "out", device="cpu")
    assert (again.skipped, again.ran, len(again.failed)) == (2, 2, 2)
    rows = job_rows(tmp_path / "out" / STORE_FILE)
    assert [r[3] for r in rows if r[1] == "resnet10t"] == [1, 1]
    assert [r[3] for r in rows if r[1] == "broken"] == [2, 2]


@pytest.mark.cluster
def test_ray_executor_gives_the_local_results(bench_folder: Path, uninterrupted: Path) -> None:
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'transferdet[ray]')")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        outcome = run_bench(
            load_config(bench_folder / "bench.yaml"), bench_folder / "ray", executor="ray", device="cpu"
        )
    finally:
        ray.shutdown()
    assert (outcome.ran, outcome.failed) == (4, [])
    assert results(bench_folder / "ray" / STORE_FILE) == results(uninterrupted)


def test_report_is_built_from_the_store(bench_folder: Path, uninterrupted: Path, cli) -> None:
    out = uninterrupted.parent
    result = cli("report", out)
    assert result.code == 0, result.err
    page = (out / "report.html").read_text()
    markdown = (out / "report.md").read_text()
    summary = markdown.split("## Summary\n\n")[1].split("\n\n")[0].splitlines()  # the report's answer ...
    shown = [line for line in result.out.splitlines() if line.startswith("- ")]
    assert summary == shown and 2 <= len(shown) <= 10 and "noise ceiling" in result.out  # ... printed last
    assert page.index("id='summary'") < page.index("<table")  # before any table
    assert page.count("<img") >= 3 and page.count("src='data:image/png;base64,") == page.count("<img")
    assert "http://" not in page and "https://" not in page  # self-contained, works offline
    assert "| resnet10t |" in markdown and "plots/" in markdown
    correlations = (out / "correlations.csv").read_text().splitlines()
    assert correlations[0].startswith("dataset,metric,layer,features,models,pearson")
    assert len(correlations) == 1 + 4  # one row per metric on the one dataset


def test_report_without_store_is_a_clear_error(tmp_path: Path, cli) -> None:
    result = cli("report", tmp_path)
    assert result.code == 2
    assert result.err.strip().startswith(f"error: {tmp_path / STORE_FILE}: no results store")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("datasets: [d]\nmodels: [timm:a, timm:b]\nbogus: 1\n", "bogus: Extra inputs are not permitted"),
        ("datasets: [d]\nmodels: [timm:a, timm:b]\ntrials: many\n", "trials: Input should be a valid integer"),
        ("datasets: [d]\nmodels: [timm:a]\n", "models: List should have at least 2 items"),
        ("datasets: [d]\nmodels: [timm:a, timm:b]\nmetrics: [logme, magic]\n", "unknown metric(s) magic"),
        ("datasets: [d]\nmodels: [timm:a, timm:a]\n", "model name(s) used twice: timm:a"),
        ("datasets: [d\n", "not valid YAML"),
    ],
)
def test_config_errors_name_the_file_and_the_problem(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bench.yaml"
    path.write_text(content)
    with pytest.raises(TransferdetError) as error:
        load_config(path)
    assert str(error.value).startswith(f"{path}: ")
    assert message in str(error.value)


def test_relative_paths_are_taken_from_the_config_folder(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "bench.yaml"
    path.parent.mkdir()
    path.write_text("datasets: [data]\nmodels: [timm:resnet18@w.pth, timm:resnet18@random]\n")
    config = load_config(path)
    assert config.datasets[0].path == path.parent / "data"
    assert config.models[0].spec == f"timm:resnet18@{path.parent / 'w.pth'}"
    assert config.models[1].spec == "timm:resnet18@random"


def test_correlation_measures_against_scipy() -> None:
    scores = np.array([0.1, 0.5, 0.3, 0.9, 0.7])
    ap = np.array([0.20, 0.35, 0.40, 0.60, 0.55])
    measures = correlation_measures(scores, ap)
    assert measures["kendall"] == pytest.approx(stats.kendalltau(scores, ap).statistic)
    assert measures["kendall"] == pytest.approx(0.8)  # one discordant pair of ten
    assert measures["spearman"] == pytest.approx(0.9)
    assert measures["weighted_tau"] == pytest.approx(stats.weightedtau(scores, ap).statistic)
    assert measures["top1_regret"] == 0.0
    assert top1_regret(np.array([3.0, 1.0, 2.0]), np.array([0.2, 0.5, 0.4])) == pytest.approx(0.3)
    constant = correlation_measures(np.ones(3), np.array([0.1, 0.2, 0.3]))
    # a constant score ties all three: the regret of a random pick among them, 0.3 - 0.2
    assert np.isnan(constant["kendall"]) and constant["top1_regret"] == pytest.approx(0.1)


def test_a_tied_pick_costs_the_mean_regret_over_the_tied_candidates() -> None:
    ap = np.array([0.3, 0.5, 0.1])
    assert top1_regret(np.array([2.0, 2.0 * (1 - 1e-12), 1.0]), ap) == pytest.approx(0.5 - 0.4)
    assert top1_regret(np.array([2.0, 2.0 * (1 - 1e-6), 1.0]), ap) == pytest.approx(0.2)  # not a tie


def test_pooled_correlation_standardises_each_dataset() -> None:
    # the same order on two datasets whose scores and APs live on different scales: pooled tau is 1
    scores, ap = [], []
    for dataset, offset in (("a", 0.0), ("b", 100.0)):
        for i, model in enumerate("xyz"):
            scores.append(
                {
                    "dataset": dataset,
                    "model": model,
                    "layer": "c5",
                    "features": "local",
                    "metric": "logme",
                    "score": offset + i,
                }
            )
            ap.append({"dataset": dataset, "model": model, "trial": 0, "key": "AP50", "value": 0.1 * i + offset / 1000})
    rows = correlate(scores, ap, "AP50")
    pooled = [r for r in rows if r.dataset == POOLED]
    assert len(rows) == 3 and len(pooled) == 1 and pooled[0].models == 6
    assert [r.kendall for r in rows[:2]] == pytest.approx([1.0, 1.0])
    assert pooled[0].pearson == pytest.approx(1.0)  # the offsets are gone
    same_scale = correlate([{**s, "score": s["score"] % 100} for s in scores], ap, "AP50")[-1]
    assert pooled[0].kendall == pytest.approx(same_scale.kendall)


def test_the_store_keeps_why_a_metric_could_not_score_and_upgrades_older_stores(tmp_path: Path) -> None:
    from transferdet.bench.store import Job, Store

    old = tmp_path / "old.sqlite"
    with sqlite3.connect(old) as db:  # the scores table as stores had it before the reason column
        db.execute(
            "CREATE TABLE scores (job_id TEXT NOT NULL, dataset TEXT NOT NULL, model TEXT NOT NULL,"
            " layer TEXT NOT NULL, features TEXT NOT NULL, metric TEXT NOT NULL, score REAL,"
            " PRIMARY KEY (job_id, metric))"
        )
        db.execute(  # a row it held: kept through the upgrade
            "INSERT INTO scores VALUES ('j0', 'pothole', 'm', 'c4', 'local', 'logme', -0.25)"
        )
    job = Job("j1", "rank", "pothole", "m", None, "c5", "local", {})
    with Store(old):
        pass
    with sqlite3.connect(old) as db:
        assert db.execute("SELECT layer, metric, score, reason FROM scores").fetchall() == [
            ("c4", "logme", -0.25, None)
        ]
    rows = [  # ... and one job's rows on two layers, which the old key (job, metric) refused
        {"layer": "c5", "features": "local", "metric": "logme", "score": -0.5, "reason": None},
        {"layer": "c5", "features": "local", "metric": "sfda", "score": None, "reason": "sfda: a single class"},
        {"layer": "c4", "features": "local", "metric": "logme", "score": -0.75, "reason": None},
    ]
    with Store(old) as store:
        store.add_jobs([job])
        store.finished(job, {"scores": rows}, 1.0)
        stored = store.scores()
    assert [(r["layer"], r["metric"], r["score"], r["reason"]) for r in stored] == [
        ("c5", "logme", -0.5, None),
        ("c5", "sfda", None, "sfda: a single class"),
        ("c4", "logme", -0.75, None),
    ]


def test_one_ranking_job_covers_every_layer(tmp_path: Path) -> None:
    from transferdet.bench.jobs import plan

    path = write_config(tmp_path, MODELS, layers=["c3", "c4", "c5"], features=["local", "global"], trials=2)
    jobs = plan(load_config(path), "cpu")
    ranking = [j for j in jobs if j.kind == "rank"]
    assert len(ranking) == 2 * 2  # models x feature kinds, not x layers
    assert {j.layer for j in ranking} == {"c3,c4,c5"} and all(
        j.definition["layers"] == ["c3", "c4", "c5"] for j in ranking
    )
    assert len(jobs) - len(ranking) == 2 * 2  # models x trials
