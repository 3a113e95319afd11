"""The report's tables (header and rows of text), and their Markdown and HTML forms."""

from __future__ import annotations

import html
import math
from collections import defaultdict

from transferdet.bench.bootstrap import MEASURES, Interval, Summary
from transferdet.bench.correlate import ap_summary
from transferdet.bench.report_data import ALL, ReportData, fmt, in_scope, model_names


def ap_table(data: ReportData, dataset: str) -> tuple[list[str], list[list[str]]]:
    ap = ap_summary(data.ap, data.target)
    header = ["model", f"{data.target} mean", "std", "trials"]
    rows = [
        [m, fmt(ap[(dataset, m)][0]), fmt(ap[(dataset, m)][1]), str(ap[(dataset, m)][2])]
        for m in model_names(data)
        if (dataset, m) in ap
    ]
    return header, rows


def correlation_table(data: ReportData, dataset: str, scope: str = ALL) -> tuple[list[str], list[list[str]]]:
    header = [
        "metric",
        "layer",
        "features",
        "Kendall τ (p)",
        "weighted τ",
        "Spearman (p)",
        "Pearson (p)",
        "top-1 regret",
    ]
    rows = [
        [
            c.metric,
            c.layer,
            c.features,
            f"{fmt(c.kendall)} ({fmt(c.kendall_p, 2)})",
            fmt(c.weighted_tau),
            f"{fmt(c.spearman)} ({fmt(c.spearman_p, 2)})",
            f"{fmt(c.pearson)} ({fmt(c.pearson_p, 2)})",
            fmt(c.top1_regret),
        ]
        for c in in_scope(data, scope)
        if c.dataset == dataset
    ]
    return header, rows


def interval_text(interval: Interval | None) -> str:
    if interval is None:
        return ""
    return f"{fmt(interval.value, 2)} [{fmt(interval.low, 2)}, {fmt(interval.high, 2)}]"


def by_kendall(summary: Summary) -> float:
    """Sort key: the highest pooled Kendall tau first, undefined last."""
    tau = summary.measures["kendall"].value
    return -tau if math.isfinite(tau) else 2.0


def summary_table(data: ReportData, scope: str) -> tuple[list[str], list[list[str]]]:
    """Pooled measures with 90% intervals, best Kendall tau first."""
    header = ["metric", "layer", "features", "Kendall τ", "weighted τ", "Pearson", "top-1 regret", "gain in τ"]

    rows = sorted((s for s in data.summaries if s.scope == scope), key=by_kendall)
    return header, [
        [s.metric, s.layer, s.features, *(interval_text(s.measures[m]) for m in MEASURES), interval_text(s.gain)]
        for s in rows
    ]


def scores_table(data: ReportData, dataset: str, layer: str, features: str) -> tuple[list[str], list[list[str]]]:
    metrics = data.config.get("metrics", [])
    table: dict[str, dict[str, float]] = defaultdict(dict)
    for row in data.scores:
        if (row["dataset"], row["layer"], row["features"]) == (dataset, layer, features):
            table[row["model"]][row["metric"]] = row["score"]
    metrics = [m for m in metrics if any(m in v for v in table.values())]
    best = {m: max((v[m] for v in table.values() if v.get(m) is not None), default=None) for m in metrics}
    rows = []
    for model in model_names(data):
        if model in table:
            cells = []
            for m in metrics:
                value = table[model].get(m)
                text = fmt(value)
                cells.append(f"**{text}**" if value is not None and value == best[m] else text)
            rows.append([model, *cells])
    return ["model", *metrics], rows


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def html_table(header: list[str], rows: list[list[str]]) -> str:
    def cell(text: str, tag: str) -> str:
        if text.startswith("**") and text.endswith("**"):
            return f"<{tag}><b>{html.escape(text[2:-2])}</b></{tag}>"
        return f"<{tag}>{html.escape(text)}</{tag}>"

    head = "".join(cell(h, "th") for h in header)
    body = "".join("<tr>" + "".join(cell(c, "td") for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
