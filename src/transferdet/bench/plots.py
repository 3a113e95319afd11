"""The report's plots, as base64 PNG: each metric's score against fine-tuned AP with model names,
AP per model with error bars (std over trials), a metric x layer heat map of Kendall tau, pooled
tau with intervals, and the within-architecture shares with the noise ceiling."""

from __future__ import annotations

import base64
import io
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from transferdet.bench.correlate import ap_summary
from transferdet.bench.report_data import ALL, ReportData, fmt, in_scope, model_names


def pyplot():  # noqa: ANN202
    """matplotlib's pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def titled(axes, xlabel: str, ylabel: str, title: str) -> None:  # noqa: ANN001 - matplotlib Axes
    """A figure's labels, title and legend, as every bench and select figure has them."""
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.legend(fontsize=7)


def save_png(figure, path: Path) -> Path:  # noqa: ANN001 - a matplotlib Figure
    """``figure`` written to ``path`` (tight layout, 110 dpi) and closed."""
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot().close(figure)
    return path


def png(figure) -> str:  # noqa: ANN001
    plt = pyplot()

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


def scatter_plot(data: ReportData, dataset: str, layer: str, features: str) -> str | None:
    """Score vs mean AP, one panel per metric, points named by model, error bars = std over trials."""
    plt = pyplot()
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
        c.metric: c.kendall for c in in_scope(data) if (c.dataset, c.layer, c.features) == (dataset, layer, features)
    }
    for axis, metric in zip(axes.flat, metrics, strict=False):
        models = [m for m in by_metric[metric] if (dataset, m) in ap]
        x = [by_metric[metric][m] for m in models]
        y = [ap[(dataset, m)][0] for m in models]
        err = [ap[(dataset, m)][1] for m in models]
        axis.errorbar(x, y, yerr=err, fmt="o", color="#1f77b4", ecolor="#9ecae1", capsize=3)
        for xi, yi, name in zip(x, y, models, strict=True):
            axis.annotate(name, (xi, yi), fontsize=7, xytext=(3, 3), textcoords="offset points")
        axis.set_title(f"{metric}  (Kendall τ {fmt(kendall.get(metric), 2)})", fontsize=9)
        axis.set_xlabel("score", fontsize=8)
        axis.set_ylabel(f"fine-tuned {data.target}", fontsize=8)
        axis.tick_params(labelsize=7)
        axis.xaxis.set_major_locator(MaxNLocator(5))
        axis.grid(alpha=0.3)
    for axis in list(axes.flat)[len(metrics) :]:
        axis.set_visible(False)
    figure.suptitle(f"{dataset}: metric score vs fine-tuned {data.target} ({layer}, {features})", fontsize=10)
    figure.tight_layout()
    return png(figure)


def ap_plot(data: ReportData, dataset: str) -> str | None:
    """Mean fine-tuned AP per model with std over trials as error bars."""
    plt = pyplot()

    ap = ap_summary(data.ap, data.target)
    models = [m for m in model_names(data) if (dataset, m) in ap]
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
    return png(figure)


def heatmap_plot(data: ReportData, dataset: str, scope: str = ALL) -> str | None:
    """Kendall tau per metric (rows) and layer/features (columns)."""
    plt = pyplot()

    # per layer only: the static scores (layer "-") are in the summary tables
    metrics = data.config.get("metrics", [])
    rows = [c for c in in_scope(data, scope) if c.dataset == dataset and c.layer != "-" and c.metric in metrics]
    if not rows:
        return None
    metrics = [m for m in metrics if any(c.metric == m for c in rows)]
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
        axis.text(j, i, fmt(value, 2), ha="center", va="center", fontsize=7, color="white" if dark else "black")
    figure.colorbar(image, ax=axis, label="Kendall τ")
    axis.set_title(f"{dataset}: Kendall τ of metric vs {data.target} ({scope})", fontsize=10)
    figure.tight_layout()
    return png(figure)


# --- tables ---------------------------------------------------------------------------------------


def interval_plot(data: ReportData, scope: str) -> str | None:
    """Pooled Kendall tau of every score with its bootstrap interval, best first; baselines grey."""
    from transferdet.transfer.rank import BASELINES

    plt = pyplot()
    rows = sorted(
        (s for s in data.summaries if s.scope == scope and math.isfinite(s.measures["kendall"].value)),
        key=lambda s: s.measures["kendall"].value,
    )
    if not rows:
        return None
    figure, axis = plt.subplots(figsize=(7, 0.22 * len(rows) + 1.3))
    for y, summary in enumerate(rows):
        tau = summary.measures["kendall"]
        colour = "#888888" if summary.metric in BASELINES else "#1f77b4"
        low, high = (tau.low, tau.high) if math.isfinite(tau.low) else (tau.value, tau.value)
        axis.plot([low, high], [y, y], color=colour, linewidth=2, alpha=0.6)
        axis.plot(tau.value, y, "o", color=colour, markersize=4)
    axis.set_yticks(range(len(rows)), [f"{s.metric} {s.layer} {s.features}" for s in rows], fontsize=7)
    axis.axvline(0, color="black", linewidth=0.6)
    axis.set_xlim(-1.05, 1.05)
    axis.set_xlabel(f"pooled Kendall τ with {data.target} (90% bootstrap interval; grey: baselines)")
    axis.set_title(f"{scope}: {rows[0].targets} target(s), {rows[0].models} models", fontsize=10)
    axis.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    return png(figure)


def within_plot(data: ReportData) -> str | None:
    """Within one architecture: every score's share of pairs ordered right with its bootstrap
    interval, best first; baselines grey, the pre-registered rule's winner orange; chance (a half)
    dashed, the noise ceiling (trial 0's AP ranking trial 1's) as a grey band."""
    from transferdet.transfer.rank import BASELINES

    plt = pyplot()
    within = data.within
    rows = sorted(
        (s for s in (within.summaries if within else []) if math.isfinite(s.measures["pair_share"].value)),
        key=lambda s: s.measures["pair_share"].value,
    )
    if not rows:
        return None
    winner = within.winner
    figure, axis = plt.subplots(figsize=(7, 0.16 * len(rows) + 1.5))
    for y, summary in enumerate(rows):
        share = summary.measures["pair_share"]
        won = winner is not None and (summary.metric, summary.layer) == (winner.metric, winner.layer)
        colour = "#888888" if summary.metric in BASELINES else ("#ff7f0e" if won else "#1f77b4")
        low, high = (share.low, share.high) if math.isfinite(share.low) else (share.value, share.value)
        axis.plot([low, high], [y, y], color=colour, linewidth=2, alpha=0.6)
        axis.plot(share.value, y, "o", color=colour, markersize=3)
    ceiling = within.ceiling.get("pair_share")
    if ceiling is not None and math.isfinite(ceiling.value):
        if math.isfinite(ceiling.low):
            axis.axvspan(ceiling.low, ceiling.high, color="#888888", alpha=0.15, label="noise ceiling (interval)")
        axis.axvline(ceiling.value, color="#555555", linewidth=1, label="noise ceiling")
    axis.axvline(0.5, color="black", linewidth=0.8, linestyle="--", label="chance")
    axis.set_yticks(range(len(rows)), [f"{s.metric} {s.layer} {s.features}" for s in rows], fontsize=6)
    axis.set_xlim(0, 1)
    axis.set_ylim(-1, len(rows))
    axis.set_xlabel(f"share of pairs ordered as fine-tuned {data.target} orders them (90% bootstrap interval)")
    pairs = max(s.pairs for s in rows)
    axis.set_title(f"within one architecture: {pairs} pairs (grey: baselines; orange: the rule's winner)", fontsize=9)
    axis.legend(loc="lower right", fontsize=7)
    axis.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    return png(figure)
