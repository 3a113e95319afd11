"""What a benchmark report shows, read from the store: the config, jobs, scores, AP and the
correlations computed from them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from transferdet.bench.bootstrap import Interval, Summary, evidence, summarise
from transferdet.bench.correlate import Correlation, correlate
from transferdet.bench.pooled_ceiling import pooled_noise_ceiling
from transferdet.bench.shelf_rule import RULE_FEATURES, RULE_LAYERS, Candidate, rule_candidates, rule_winner
from transferdet.bench.store import STORE_FILE, Store
from transferdet.bench.within_summary import WithinSummary, noise_ceiling, noise_ceiling_pairs, summarise_within
from transferdet.errors import TransferdetError
from transferdet.models.specs import split_spec
from transferdet.transfer.combined import card_then_metric

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
    within: Within | None = None  # the within-architecture scope, where an architecture has 2+ sources
    ceilings: dict[str, dict[str, Interval]] = field(default_factory=dict)  # scope -> pooled noise ceiling


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


@dataclass
class Within:
    """Within one architecture, over pretrained sources: every score's figures, the noise ceiling,
    and the pre-registered rule's candidates and winner (where the store scored its layers)."""

    summaries: list[WithinSummary]
    ceiling: dict[str, Interval]
    candidates: list[Candidate]
    winner: Candidate | None
    ceiling_pairs: int = 0  # the pairs the noise ceiling compares (fine-tuned twice, scored or not)


def architectures(config: dict) -> dict[str, str]:
    """Each model's architecture (its spec's ``ARCH``)."""
    return {m["name"]: split_spec(str(m["spec"]))[0] for m in config.get("models", [])}


def analyse_within(config: dict, scores: list[dict], ap: list[dict], target: str, replicates: int) -> Within | None:
    """The within-architecture scope over the pretrained sources (or all, without random ones)."""
    models = scopes(config).get(PRETRAINED) or {m["name"] for m in config.get("models", [])}
    arch_of = {m: a for m, a in architectures(config).items() if m in models}
    if not any(list(arch_of.values()).count(a) >= 2 for a in arch_of.values()):
        return None
    found = evidence(scores, ap, target, set(arch_of))
    seed = int(config.get("seed", 0))
    summaries = summarise_within(found, arch_of, PRETRAINED, replicates, seed)
    layers = {s.layer for s in summaries}
    candidates = rule_candidates(summaries) if set(RULE_LAYERS) <= layers else []
    ceiling = noise_ceiling(found, arch_of, replicates, seed)
    return Within(summaries, ceiling, candidates, rule_winner(candidates), noise_ceiling_pairs(found, arch_of))


def combined_rows(scores: list[dict], winner: Candidate) -> list[dict]:
    """The combined ranker's rows (:mod:`~transferdet.transfer.combined`): the card's top-1, then
    the rule's winner, per target and background setting."""
    top1 = {(r["dataset"], r["model"]): r["score"] for r in scores if r["metric"] == "imagenet_top1"}
    rows = []
    for dataset, features in {(r["dataset"], r["features"]) for r in scores if r["features"] in RULE_FEATURES}:
        metric = {r["model"]: r["score"] for r in scores if (r["dataset"], r["features"], r["metric"], r["layer"])
                  == (dataset, features, winner.metric, winner.layer) and r["score"] is not None}  # fmt: skip
        combined = card_then_metric({m: top1.get((dataset, m)) for m in metric}, metric)
        rows += [{"dataset": dataset, "model": m, "layer": winner.layer, "features": features,
                  "metric": f"card+{winner.metric}", "score": v} for m, v in combined.items()]  # fmt: skip
    return sorted(rows, key=lambda r: (r["dataset"], r["features"], r["model"]))


def analyse(
    config: dict, scores: list[dict], ap: list[dict], target: str, replicates: int = REPLICATES
) -> tuple[list[Correlation], list[Summary], Within | None, dict[str, dict[str, Interval]]]:
    """Correlations, bootstrap summaries and the noise ceiling in every scope, and the
    within-architecture scope (its rule's winner joins the others as the combined ranker
    ``card+METRIC``); the bootstrap is seeded with the bench's seed, so the same store always gives
    the same report."""
    from transferdet.transfer.rank import BASELINES

    scores = static_once(scores)
    within = analyse_within(config, scores, ap, target, replicates)
    if within is not None and within.winner is not None:
        scores = scores + combined_rows(scores, within.winner)
    correlations, summaries, ceilings = [], [], {}
    seed = int(config.get("seed", 0))
    for scope, models in scopes(config).items():
        kept_scores = [r for r in scores if models is None or r["model"] in models]
        kept_ap = [r for r in ap if models is None or r["model"] in models]
        correlations += correlate(kept_scores, kept_ap, target, scope)
        found = evidence(scores, ap, target, models)
        summaries += summarise(found, scope, BASELINES, replicates, seed=seed)
        ceilings[scope] = pooled_noise_ceiling(found, replicates, seed)
    return correlations, summaries, within, ceilings


def load_report_data(bench_dir: Path, replicates: int = REPLICATES) -> ReportData:
    """The store's report data; ``replicates``: the bootstrap's draws behind every interval."""
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
    return ReportData(config, jobs, scores, ap, target, *analyse(config, scores, ap, target, replicates))


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
