"""Faults in a sweep: a job that fails in a way that may not recur is run again (up to three times
in one sweep), one that fails the same way three times is recorded as failed and the sweep goes on,
and a worker node killed while it holds a fine-tuning job costs only the iterations since that
job's last checkpoint: the sweep ends with every job done once and the rows of an uninterrupted run.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from bench_kit import MODELS, TINY_TRAINING, job_rows, results, rows_so_far, write_config
from transferdet.bench import runner
from transferdet.bench.config import load_config
from transferdet.bench.runner import MAX_ATTEMPTS, run_bench
from transferdet.bench.store import STORE_FILE

# long enough that a node can be killed between a fine-tuning job's first checkpoint and its end
SLOW_TRAINING = {**TINY_TRAINING, "iterations": 16}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    from transferdet.data.synthetic import SynthConfig, synthesize

    path = tmp_path_factory.mktemp("faults") / "data"
    synthesize(SynthConfig(source="shapes", images=24, size=64, seed=5), path)
    return path


def _config(folder: Path, data: Path, models: list, training: dict):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "data").symlink_to(data)
    return load_config(write_config(folder, models, recipe_overrides=training, metrics=["logme", "h_score"]))


def test_unexpected_errors_are_retried_then_recorded_and_input_errors_are_not(tmp_path, data, monkeypatch):
    calls: list[str] = []
    real = runner.run_job

    def flaky(job, out):
        calls.append(job.model)
        if job.model == "flaky" and calls.count("flaky") == 1:
            raise RuntimeError("a passing fault")
        if job.model == "broken":
            raise RuntimeError("always the same fault")
        return real(job, out)

    monkeypatch.setattr(runner, "run_job", flaky)
    unreadable = tmp_path / "unreadable.pth"
    unreadable.write_bytes(b"not a checkpoint")  # an error about the inputs: it would fail the same way again
    models = [
        {"name": "flaky", "spec": MODELS[0]["spec"]},
        {"name": "broken", "spec": MODELS[1]["spec"]},
        {"name": "unreadable", "spec": f"timm:resnet10t@{unreadable}"},
    ]
    config = _config(tmp_path, data, models, {**TINY_TRAINING, "iterations": 2})
    events = []
    outcome = run_bench(config, tmp_path / "out", device="cpu", on_job=lambda e, j, d: events.append((e, j.model)))
    assert calls.count("broken") == 2 * MAX_ATTEMPTS  # its ranking job and its fine-tuning job, 3 times each
    assert calls.count("flaky") == 3  # ranked twice (the first attempt failed), fine-tuned once
    assert calls.count("unreadable") == 2  # once each
    assert sorted(job.model for job, _ in outcome.failed) == ["broken", "broken", "unreadable", "unreadable"]
    errors = {job.model: error for job, error in outcome.failed}
    assert errors["broken"].startswith("RuntimeError: always the same fault") and "3 attempts" in errors["broken"]
    assert "unreadable.pth" in errors["unreadable"] and "attempts" not in errors["unreadable"]
    rows = {(r[0], r[1]): r for r in job_rows(tmp_path / "out" / STORE_FILE)}
    assert rows["rank", "flaky"][2:5] == ("done", 2, 1)
    assert rows["rank", "broken"][2:4] == ("failed", 3) and "always the same fault" in rows["rank", "broken"][5]
    assert ("lost", "flaky") in events and ("retry", "flaky") in events


@pytest.fixture(scope="module")
def cluster():
    """A Ray cluster of a head that runs nothing and two worker nodes of one CPU each."""
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'transferdet[ray]')")
    from ray.cluster_utils import Cluster

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    workers = [nodes.add_node(num_cpus=1) for _ in range(2)]
    ray.init(address=nodes.address, log_to_driver=False)
    nodes.wait_for_nodes()
    yield nodes, workers
    ray.shutdown()
    nodes.shutdown()


@pytest.mark.cluster
def test_a_crashing_worker_is_recorded_after_three_attempts(cluster, tmp_path, data, monkeypatch):
    def crash(job, out, threads=None):  # pickled by value: runs in the Ray worker
        if job.model == "crashing":
            os._exit(1)
        from transferdet.bench import runner as worker_side

        return worker_side.execute(job, out, threads)

    monkeypatch.setattr(runner, "execute", crash)
    models = [MODELS[0], {"name": "crashing", "spec": MODELS[1]["spec"]}]
    config = _config(tmp_path, data, models, {**TINY_TRAINING, "iterations": 2})
    outcome = run_bench(config, tmp_path / "out", executor="ray", device="cpu")
    assert sorted(job.kind for job, _ in outcome.failed) == ["rank", "train"]
    assert all(error.startswith("worker lost: ") and "3 attempts" in error for _, error in outcome.failed)
    rows = job_rows(tmp_path / "out" / STORE_FILE)
    assert [r[2:5] for r in rows if r[1] == "crashing"] == [("failed", 3, 0)] * 2
    assert [r[2:5] for r in rows if r[1] == MODELS[0]["name"]] == [("done", 1, 1)] * 2


def _node_holding(workers: list, log: Path):  # noqa: ANN202 - a Ray node
    """The worker node one of whose processes has ``log`` (a fine-tuning run's log) open."""
    import psutil

    for node in workers:
        raylet = psutil.Process(node.all_processes["raylet"][0].process.pid)
        for process in raylet.children(recursive=True):
            try:
                if any(Path(f.path).resolve() == log.resolve() for f in process.open_files()):
                    return node
            except psutil.Error:
                continue  # a process that just ended
    return None


def _kill_a_node_holding_training(cluster, store: Path, runs: Path, sweep: threading.Thread) -> int:
    """Wait until a fine-tuning job has written a checkpoint, then kill the node that runs it;
    returns the checkpoint's iteration at that moment."""
    import torch

    nodes, workers = cluster
    deadline = time.time() + 300
    while sweep.is_alive() and time.time() < deadline:
        training = [r for r in rows_so_far(store) if r[0] == "train" and r[2] == "running"]
        for checkpoint in list(runs.glob("*/*/checkpoint.pt")) if training and runs.exists() else []:
            node = _node_holding(workers, checkpoint.parent / "log.jsonl")
            if node is not None:
                stopped_at = torch.load(checkpoint, weights_only=False, mmap=True)["iteration"]
                nodes.remove_node(node, allow_graceful=False)
                return stopped_at
        time.sleep(0.02)
    raise AssertionError("the sweep finished before a node could be killed during fine-tuning")


@pytest.mark.cluster
def test_killing_a_worker_node_during_fine_tuning_resumes_the_job_elsewhere(cluster, tmp_path, data):
    uninterrupted = tmp_path / "uninterrupted"
    run_bench(_config(uninterrupted, data, MODELS, SLOW_TRAINING), uninterrupted / "out", device="cpu")
    config = _config(tmp_path / "killed", data, MODELS, SLOW_TRAINING)
    out = tmp_path / "killed" / "out"
    outcomes = []
    sweep = threading.Thread(target=lambda: outcomes.append(run_bench(config, out, executor="ray", device="cpu")))
    sweep.start()
    try:
        stopped_at = _kill_a_node_holding_training(cluster, out / STORE_FILE, out / "runs", sweep)
    finally:
        sweep.join(timeout=600)
    assert outcomes and outcomes[0].failed == []
    rows = job_rows(out / STORE_FILE)
    assert all(r[2] == "done" and r[4] == 1 for r in rows), rows  # every job done, none twice
    assert sorted(r[3] for r in rows) == [1, 1, 1, 2]  # the killed job ran again, once
    with sqlite3.connect(out / STORE_FILE) as db:
        resumed = db.execute("SELECT resumed_from FROM jobs WHERE attempts = 2").fetchone()[0]
    assert resumed is not None and 2 <= stopped_at <= resumed < SLOW_TRAINING["iterations"], (stopped_at, resumed)
    assert results(out / STORE_FILE) == results(uninterrupted / "out" / STORE_FILE)
