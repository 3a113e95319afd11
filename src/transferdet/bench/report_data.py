"""What a benchmark report shows, read from the store: the config, jobs, scores, AP and the
correlations computed from them."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from transferdet.bench.correlate import Correlation, correlate
from transferdet.bench.store import STORE_FILE, Store
from transferdet.errors import TransferdetError


@dataclass
class ReportData:
    config: dict
    jobs: list[dict]
    scores: list[dict]
    ap: list[dict]
    target: str
    correlations: list[Correlation]


def load_report_data(bench_dir: Path) -> ReportData:
    path = bench_dir / STORE_FILE
    if not path.is_file():
        raise TransferdetError(
            f"{path}: no results store (run `transferdet bench CONFIG.yaml --out {bench_dir}` first)"
        )
    with Store(path) as store:
        config = store.meta("config") or {}
        job_ids = store.meta("job_ids")
        jobs = store.jobs(job_ids)
        scores = store.scores(job_ids)
        ap = store.ap(job_ids)
    target = config.get("target", "AP50")
    return ReportData(config, jobs, scores, ap, target, correlate(scores, ap, target))


def fmt(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    text = f"{value:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text  # no "-0.000"


def dataset_names(data: ReportData) -> list[str]:
    names = [d["name"] for d in data.config.get("datasets", [])]
    return [n for n in names if any(j["dataset"] == n for j in data.jobs)]


def model_names(data: ReportData) -> list[str]:
    return [m["name"] for m in data.config.get("models", [])]
