"""The answer a benchmark report opens with, and the console prints last: at most ten lines generated
from the data: in each scope the best ranker against the card and the best baseline, with 90%
intervals (Efron & Tibshirani 1993, percentile), the noise ceiling, and one sentence on what to use."""

from __future__ import annotations

from transferdet.bench.bootstrap import Interval, Summary
from transferdet.bench.report_data import ALL, PRETRAINED, ReportData
from transferdet.bench.report_tables import interval_text

CARD = "imagenet_top1"
BASELINES = ("knn", "model_size", CARD)  # what a score must beat to be worth computing
SCOPE_NAMES = {ALL: "all sources", PRETRAINED: "pretrained sources only"}


def _best(rows: list[Summary]) -> Summary | None:
    scored = [s for s in rows if s.measures["kendall"].value == s.measures["kendall"].value]  # not NaN
    return max(scored, key=lambda s: s.measures["kendall"].value, default=None)


def _named(summary: Summary) -> str:
    tau = interval_text(summary.measures["kendall"])
    where = "" if summary.metric in (CARD, "model_size") else f" ({summary.layer}, {summary.features})"
    return f"{summary.metric}{where} τ {tau}"


def _scope_line(data: ReportData, scope: str) -> tuple[str, Summary | None, Interval | None]:
    rows = [s for s in data.summaries if s.scope == scope]
    best = _best([s for s in rows if s.metric not in BASELINES])
    card = _best([s for s in rows if s.metric == CARD])
    baseline = _best([s for s in rows if s.metric in BASELINES and s.metric != CARD])
    parts = [f"best score {_named(best)}" if best else "no score computed"]
    parts += [f"card {_named(card)}" if card else "no card stated"]
    parts += [f"best baseline {_named(baseline)}"] if baseline else []
    gain = best.gain if best is not None else None
    if gain is not None:
        against = (best.against or "the best baseline").replace(" - -", "")
        parts.append(f"gain over {against} {interval_text(gain)}")
    return f"{SCOPE_NAMES.get(scope, scope)}: {'; '.join(parts)}.", best, gain


def summary_lines(data: ReportData) -> list[str]:
    """At most ten lines: per scope its best ranker beside the card and the best baseline, the noise
    ceiling, then what to use."""
    lines, winners = [], []
    for scope in (ALL, PRETRAINED):
        if not any(s.scope == scope for s in data.summaries):
            continue
        line, best, gain = _scope_line(data, scope)
        lines.append(line)
        ceiling = data.ceilings.get(scope, {}).get("kendall")
        measured = "n/a (one trial: trials: 2 measures it)" if ceiling is None else f"τ {interval_text(ceiling)}"
        lines.append(f"noise ceiling ({SCOPE_NAMES.get(scope, scope)}): {measured} (trial against trial)")
        if best is not None and gain is not None and gain.low > 0:
            winners.append(best)
    lines.append(_advice(data, winners))
    return lines[:10]


def _advice(data: ReportData, winners: list[Summary]) -> str:
    """One sentence: a score whose gain over the baselines is above zero in its interval, else the card."""
    if winners:
        best = winners[0]
        return (f"Use: {best.metric} on {best.layer} ({best.features}), the only kind of score here whose gain over "
                "the baselines stays above zero across its interval; race the top candidates with select.")  # fmt: skip
    has_card = _best([s for s in data.summaries if s.metric == CARD]) is not None  # stated, so it scored
    first = "rank by the card (ImageNet top-1)" if has_card else "state each candidate's card (ImageNet top-1)"
    return (
        f"Use: {first}; no score here beats the baselines beyond its interval, so race the candidates that "
        "matter with select rather than trust a score."
    )
