"""The benchmark report: ``DIR/report.md`` and a self-contained ``DIR/report.html`` (inline CSS,
plots as embedded PNG, nothing fetched), rebuilt from the store alone, plus ``correlations.csv``,
``scores.csv`` and ``ap.csv``.

Plots: each metric's score against fine-tuned AP with model names, AP per model with error bars
(std over trials), and a metric x layer heat map of Kendall tau.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import math
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from transferdet.atomic import atomic_write_bytes
from transferdet.bench.correlate import POOLED, Correlation, ap_summary, correlate
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


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    text = f"{value:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text  # no "-0.000"


def _pyplot():  # noqa: ANN202
    """matplotlib's pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(figure) -> str:  # noqa: ANN001
    plt = _pyplot()

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


def _datasets(data: ReportData) -> list[str]:
    names = [d["name"] for d in data.config.get("datasets", [])]
    return [n for n in names if any(j["dataset"] == n for j in data.jobs)]


def _models(data: ReportData) -> list[str]:
    return [m["name"] for m in data.config.get("models", [])]


def scatter_plot(data: ReportData, dataset: str, layer: str, features: str) -> str | None:
    """Score vs mean AP, one panel per metric, points named by model, error bars = std over trials."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    ap = ap_summary(data.ap, data.target)
    by_metric: dict[str, dict[str, float]] = defaultdict(dict)
    for row in data.scores:
        if (row["dataset"], row["layer"], row["features"]) == (dataset, layer, features) and row["score"] is not None:
            by_metric[row["metric"]][row["model"]] = row["score"]
    metrics = [m for m in data.config.get("metrics", []) if any((dataset, k) in ap for k in by_metric.get(m, {}))]
    if not metrics:
        return None
    columns = min(3, len(metrics))
    rows = math.ceil(len(metrics) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.5 * rows), squeeze=False)
    kendall = {
        c.metric: c.kendall for c in data.correlations if (c.dataset, c.layer, c.features) == (dataset, layer, features)
    }
    for axis, metric in zip(axes.flat, metrics, strict=False):
        models = [m for m in by_metric[metric] if (dataset, m) in ap]
        x = [by_metric[metric][m] for m in models]
        y = [ap[(dataset, m)][0] for m in models]
        err = [ap[(dataset, m)][1] for m in models]
        axis.errorbar(x, y, yerr=err, fmt="o", color="#1f77b4", ecolor="#9ecae1", capsize=3)
        for xi, yi, name in zip(x, y, models, strict=True):
            axis.annotate(name, (xi, yi), fontsize=7, xytext=(3, 3), textcoords="offset points")
        axis.set_title(f"{metric}  (Kendall τ {_fmt(kendall.get(metric), 2)})", fontsize=9)
        axis.set_xlabel("score", fontsize=8)
        axis.set_ylabel(f"fine-tuned {data.target}", fontsize=8)
        axis.tick_params(labelsize=7)
        axis.xaxis.set_major_locator(MaxNLocator(5))
        axis.grid(alpha=0.3)
    for axis in list(axes.flat)[len(metrics) :]:
        axis.set_visible(False)
    figure.suptitle(f"{dataset}: metric score vs fine-tuned {data.target} ({layer}, {features})", fontsize=10)
    figure.tight_layout()
    return _png(figure)


def ap_plot(data: ReportData, dataset: str) -> str | None:
    """Mean fine-tuned AP per model with std over trials as error bars."""
    plt = _pyplot()

    ap = ap_summary(data.ap, data.target)
    models = [m for m in _models(data) if (dataset, m) in ap]
    if not models:
        return None
    means = [ap[(dataset, m)][0] for m in models]
    stds = [ap[(dataset, m)][1] for m in models]
    figure, axis = plt.subplots(figsize=(max(4.0, 0.9 * len(models) + 2), 3.4))
    axis.bar(range(len(models)), means, yerr=stds, capsize=4, color="#4c9f70", ecolor="#333333")
    axis.set_xticks(range(len(models)), models, rotation=30, ha="right", fontsize=8)
    axis.set_ylabel(f"fine-tuned {data.target} (mean ± std)", fontsize=8)
    axis.set_title(f"{dataset}: {data.target} per model", fontsize=10)
    axis.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    return _png(figure)


def heatmap_plot(data: ReportData, dataset: str) -> str | None:
    """Kendall tau per metric (rows) and layer/features (columns)."""
    plt = _pyplot()

    rows = [c for c in data.correlations if c.dataset == dataset]
    if not rows:
        return None
    metrics = [m for m in data.config.get("metrics", []) if any(c.metric == m for c in rows)]
    columns = sorted({(c.layer, c.features) for c in rows})
    grid = np.full((len(metrics), len(columns)), np.nan)
    for c in rows:
        grid[metrics.index(c.metric), columns.index((c.layer, c.features))] = c.kendall
    figure, axis = plt.subplots(figsize=(1.2 * len(columns) + 2.5, 0.42 * len(metrics) + 1.4))
    image = axis.imshow(grid, cmap="RdBu", vmin=-1, vmax=1, aspect="auto")
    axis.set_xticks(range(len(columns)), [f"{layer}\n{features}" for layer, features in columns], fontsize=8)
    axis.set_yticks(range(len(metrics)), metrics, fontsize=8)
    for (i, j), value in np.ndenumerate(grid):
        dark = math.isfinite(value) and abs(value) > 0.6
        axis.text(j, i, _fmt(value, 2), ha="center", va="center", fontsize=7, color="white" if dark else "black")
    figure.colorbar(image, ax=axis, label="Kendall τ")
    axis.set_title(f"{dataset}: Kendall τ of metric vs {data.target}", fontsize=10)
    figure.tight_layout()
    return _png(figure)


# --- tables ---------------------------------------------------------------------------------------


def ap_table(data: ReportData, dataset: str) -> tuple[list[str], list[list[str]]]:
    ap = ap_summary(data.ap, data.target)
    header = ["model", f"{data.target} mean", "std", "trials"]
    rows = [
        [m, _fmt(ap[(dataset, m)][0]), _fmt(ap[(dataset, m)][1]), str(ap[(dataset, m)][2])]
        for m in _models(data)
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
            f"{_fmt(c.kendall)} ({_fmt(c.kendall_p, 2)})",
            _fmt(c.weighted_tau),
            f"{_fmt(c.spearman)} ({_fmt(c.spearman_p, 2)})",
            f"{_fmt(c.pearson)} ({_fmt(c.pearson_p, 2)})",
            _fmt(c.top1_regret),
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
    for model in _models(data):
        if model in table:
            cells = []
            for m in metrics:
                value = table[model].get(m)
                text = _fmt(value)
                cells.append(f"**{text}**" if value is not None and value == best[m] else text)
            rows.append([model, *cells])
    return ["model", *metrics], rows


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    def cell(text: str, tag: str) -> str:
        if text.startswith("**") and text.endswith("**"):
            return f"<{tag}><b>{html.escape(text[2:-2])}</b></{tag}>"
        return f"<{tag}>{html.escape(text)}</{tag}>"

    head = "".join(cell(h, "th") for h in header)
    body = "".join("<tr>" + "".join(cell(c, "td") for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


CSS = """
body { font-family: -apple-system, 'Segoe UI', Roboto, sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; line-height: 1.45; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 1.8em; }
table { border-collapse: collapse; margin: .8em 0; font-size: .88em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f3f3f3; } img { max-width: 100%; display: block; margin: .8em 0; }
.note { color: #555; font-size: .9em; } .failed { color: #a00; }
"""


def build_report(bench_dir: Path) -> tuple[Path, Path]:
    """Write report.md, report.html and the CSV files from ``bench_dir``'s store."""
    data = load_report_data(bench_dir)
    md: list[str] = []
    parts: list[str] = []

    def heading(text: str, level: int = 2) -> None:
        md.append(f"{'#' * level} {text}\n")
        parts.append(f"<h{level}>{html.escape(text)}</h{level}>")

    def paragraph(text: str) -> None:
        md.append(text + "\n")
        parts.append(f"<p class='note'>{html.escape(text)}</p>")

    def table(header: list[str], rows: list[list[str]]) -> None:
        md.append(_markdown_table(header, rows) + "\n")
        parts.append(_html_table(header, rows))

    def plot(name: str, png: str | None, caption: str) -> None:
        if png is None:
            return
        (bench_dir / "plots").mkdir(exist_ok=True)
        (bench_dir / "plots" / f"{name}.png").write_bytes(base64.b64decode(png))
        md.append(f"![{caption}](plots/{name}.png)\n")
        parts.append(f"<img alt='{html.escape(caption)}' src='data:image/png;base64,{png}'>")

    config = data.config
    heading("transferdet benchmark report", 1)
    done = sum(j["status"] == "done" for j in data.jobs)
    failed = [j for j in data.jobs if j["status"] == "failed"]
    paragraph(
        f"{len(config.get('models', []))} models x {len(config.get('datasets', []))} dataset(s); detector "
        f"{config.get('detector')} with recipe {config.get('recipe')}, {config.get('trials')} trial(s); "
        f"target {data.target}. Jobs: {done} of {len(data.jobs)} done, {len(failed)} failed."
    )
    layers = [(layer, f) for layer in config.get("layers", []) for f in config.get("features", [])]
    datasets = _datasets(data)
    if any(c.dataset == POOLED for c in data.correlations):
        heading(f"All datasets (pooled, scores and {data.target} standardised per dataset)")
        table(*correlation_table(data, POOLED))
        plot("kendall-pooled", heatmap_plot(data, POOLED), "Kendall tau, pooled")
    for index, dataset in enumerate(datasets):
        heading(f"Dataset {dataset}")
        table(*ap_table(data, dataset))
        plot(f"ap-{index}", ap_plot(data, dataset), f"{data.target} per model on {dataset}")
        heading("How well each metric predicted fine-tuned AP", 3)
        table(*correlation_table(data, dataset))
        plot(f"kendall-{index}", heatmap_plot(data, dataset), f"Kendall tau on {dataset}")
        for position, (layer, features) in enumerate(layers):
            heading(f"Scores ({layer}, {features}; best per metric in bold)", 3)
            table(*scores_table(data, dataset, layer, features))
            plot(
                f"scatter-{index}-{position}",
                scatter_plot(data, dataset, layer, features),
                f"score vs {data.target}, {dataset}",
            )
    if failed:
        heading("Failed jobs")
        table(
            ["kind", "dataset", "model", "trial", "error"],
            [
                [
                    j["kind"],
                    j["dataset"],
                    j["model"],
                    str(j["trial"] if j["trial"] is not None else ""),
                    j["error"] or "",
                ]
                for j in failed
            ],
        )
    md_path, html_path = bench_dir / "report.md", bench_dir / "report.html"
    atomic_write_bytes(md_path, "\n".join(md).encode())
    page = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>transferdet benchmark report</title>"
        f"<style>{CSS}</style></head><body>{''.join(parts)}</body></html>"
    )
    atomic_write_bytes(html_path, page.encode())
    _write_csvs(bench_dir, data)
    return md_path, html_path


def _write_csvs(bench_dir: Path, data: ReportData) -> None:
    def write(name: str, rows: list[dict]) -> None:
        buffer = io.StringIO()
        if rows:
            writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        atomic_write_bytes(bench_dir / name, buffer.getvalue().encode())

    write("correlations.csv", [asdict(c) for c in data.correlations])
    write("scores.csv", [{k: v for k, v in r.items() if k != "job_id"} for r in data.scores])
    write("ap.csv", [{k: v for k, v in r.items() if k != "job_id"} for r in data.ap])
