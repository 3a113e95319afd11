"""The shelf benchmark's selection rule, as written and committed before its new fine-tunes ran
(benchmarks/real/README.md, "Pre-registered selection rule"): which ranker ``rank`` recommends
within one architecture.

Candidates: eight metrics x five feature variants, each at background RoIs off and on. Criterion:
the within-architecture ``pair_share`` over pretrained sources, averaged over the two background
settings. Tie-break: within :data:`MARGIN` of the best share, the higher mean per-group tau-b;
then the earlier candidate (variants in :data:`RULE_LAYERS` order, metrics in :data:`RULE_METRICS`
order).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from transferdet.bench.within_summary import WithinSummary
from transferdet.ties import tied

RULE_METRICS = ("logme", "tlogme", "h_score", "reg_h_score", "transrate", "sfda", "etran", "gbc")
RULE_LAYERS = ("c5", "c4", "c5/wm64", "c4/wm64", "pyramid/wm32")
RULE_FEATURES = ("local+bg0", "local+bg2")
MARGIN = 0.02


@dataclass(frozen=True)
class Candidate:
    metric: str
    layer: str
    share: float  # pair_share averaged over RULE_FEATURES
    tau: float  # group tau-b averaged the same way
    shares: tuple[float, ...]  # per background setting


def rule_candidates(summaries: list[WithinSummary]) -> list[Candidate]:
    """Every candidate the store scored in both background settings, in the rule's order."""
    found = {(s.metric, s.layer, s.features): s for s in summaries}
    candidates = []
    for layer in RULE_LAYERS:
        for metric in RULE_METRICS:
            rows = [found.get((metric, layer, features)) for features in RULE_FEATURES]
            if any(r is None for r in rows):
                continue
            shares = tuple(r.measures["pair_share"].value for r in rows)
            taus = [r.measures["group_tau"].value for r in rows]
            if any(math.isnan(v) for v in (*shares, *taus)):
                continue
            candidates.append(Candidate(metric, layer, sum(shares) / len(shares), sum(taus) / len(taus), shares))
    return candidates


def rule_winner(candidates: list[Candidate]) -> Candidate | None:
    """The candidate the rule selects (None without candidates)."""
    if not candidates:
        return None
    best = max(c.share for c in candidates)
    near = [c for c in candidates if c.share >= best - MARGIN]
    top = max(c.tau for c in near)
    return next(c for c in near if tied(c.tau, top))  # the earliest in the rule's order
