"""What a benchmark report shows, read from the store: the config, jobs, scores, AP and the
correlations computed from them."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from transferdet.bench.bootstrap import Summary, evidence, summarise
from transferdet.bench.correlate import Correlation, correlate
from transferdet.bench.store import STORE_FILE, Store
from transferdet.errors import TransferdetError
from transferdet.models.specs import split_spec

ALL, PRETRAINED = "all sources", "pretrained sources"
REPLICATES = 1000  # bootstrap replicates behind every interval


@dataclass
class ReportData:
    config: dict
    jobs: list[dict]
    scores: list[dict]
    ap: list[dict]
    target: str
    correlations: list[Correlation]  # per dataset and pooled, in each scope
    summaries: list[Summary]  # pooled, with bootstrap intervals and gains over the best baseline


def scopes(config: dict) -> dict[str, set[str] | None]:
    """The model sets correlated over: all, and the pretrained ones (weights other than ``random``,
    which a spec without ``@`` means too) where there are random ones to leave out and at least
    two pretrained."""
    models = config.get("models", [])
    pretrained = {m["name"] for m in models if split_spec(str(m["spec"]))[1] not in (None, "random")}
    return {ALL: None} | ({PRETRAINED: pretrained} if len(models) > len(pretrained) >= 2 else {})


def static_once(scores: list[dict]) -> list[dict]:
    """The scores that do not look at the data (model size, the card's top-1) once per dataset and
    model, under layer and features ``-``, rather than repeated for every layer and feature kind."""
    from transferdet.transfer.rank import STATIC_SCORES

    kept, seen = [], set()
    for row in scores:
        if row["metric"] not in STATIC_SCORES:
            kept.append(row)
        elif (key := (row["dataset"], row["model"], row["metric"])) not in seen:
            seen.add(key)
            kept.append({**row, "layer": "-", "features": "-"})
    return kept


def analyse(
    config: dict, scores: list[dict], ap: list[dict], target: str, replicates: int = REPLICATES
) -> tuple[list[Correlation], list[Summary]]:
    """Correlations and bootstrap summaries in every scope; the bootstrap is seeded with the
    bench's seed, so the same store always gives the same report."""
    from transferdet.transfer.rank import BASELINES

    scores = static_once(scores)
    correlations, summaries = [], []
    for scope, models in scopes(config).items():
        kept_scores = [r for r in scores if models is None or r["model"] in models]
        kept_ap = [r for r in ap if models is None or r["model"] in models]
        correlations += correlate(kept_scores, kept_ap, target, scope)
        found = evidence(scores, ap, target, models)
        summaries += summarise(found, scope, BASELINES, replicates, seed=int(config.get("seed", 0)))
    return correlations, summaries


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
    return ReportData(config, jobs, scores, ap, target, *analyse(config, scores, ap, target))


def in_scope(data: ReportData, scope: str = ALL) -> list[Correlation]:
    return [c for c in data.correlations if c.scope == scope]


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
