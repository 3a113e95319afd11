"""The report's tables (header and rows of text), and their Markdown and HTML forms."""

from __future__ import annotations

import html
from collections import defaultdict

from transferdet.bench.correlate import ap_summary
from transferdet.bench.report_data import ReportData, fmt, model_names


def ap_table(data: ReportData, dataset: str) -> tuple[list[str], list[list[str]]]:
    ap = ap_summary(data.ap, data.target)
    header = ["model", f"{data.target} mean", "std", "trials"]
    rows = [
        [m, fmt(ap[(dataset, m)][0]), fmt(ap[(dataset, m)][1]), str(ap[(dataset, m)][2])]
        for m in model_names(data)
        if (dataset, m) in ap
    ]
    return header, rows


def correlation_table(data: ReportData, dataset: str) -> tuple[list[str], list[list[str]]]:
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
        for c in data.correlations
        if c.dataset == dataset
    ]
    return header, rows


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
