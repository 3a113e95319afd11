"""What the benchmark tests share: a tiny training recipe, two small models, a config writer and
readers of a store's results and job rows."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import yaml

TINY_TRAINING = {
    "iterations": 8,
    "fpn_channels": 64,
    "checkpoint_every": 2,
    "min_size": [64],
    "max_size": 64,
    "test_size": 64,
    "warmup_iterations": 2,
}


def write_config(folder: Path, models: list, **extra) -> Path:
    config = {
        "datasets": [{"name": "shapes", "path": "data"}],
        "models": models,
        "detector": "fcos",
        "recipe": "quick",
        "recipe_overrides": TINY_TRAINING,
        "trials": 1,
        "metrics": ["logme", "tlogme", "h_score", "transrate"],
        "layers": ["c5"],
        "image_size": 64,
        "threads_per_job": 1,  # bit-identical results whichever executor runs a job
        **extra,
    }
    path = folder / "bench.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


MODELS = [
    {"name": "resnet10t", "spec": "timm:resnet10t@random"},
    {"name": "mobilenet", "spec": "timm:mobilenetv3_small_050@random"},
]


def results(store: Path) -> tuple[list, list]:
    db = sqlite3.connect(store)
    try:
        scores = sorted(db.execute("SELECT dataset, model, layer, features, metric, score FROM scores").fetchall())
        ap = sorted(db.execute("SELECT dataset, model, trial, key, value FROM ap").fetchall())
        return scores, ap
    finally:
        db.close()


def job_rows(store: Path) -> list[tuple]:
    db = sqlite3.connect(store)
    try:
        return db.execute(
            "SELECT kind, model, status, attempts, completions, error FROM jobs ORDER BY rowid"
        ).fetchall()
    finally:
        db.close()


def rows_so_far(store: Path) -> list[tuple]:
    """The store's job rows, or none while a running sweep has not created it yet (polling)."""
    try:
        return job_rows(store) if store.exists() else []
    except sqlite3.OperationalError:  # the file is there, its tables not yet
        return []
