"""The benchmark report: ``DIR/report.md`` and a self-contained ``DIR/report.html`` (inline CSS,
plots as embedded PNG, nothing fetched), rebuilt from the store alone, plus ``correlations.csv``,
``scores.csv`` and ``ap.csv``. What it shows comes from :mod:`~transferdet.bench.report_data`,
its tables from :mod:`~transferdet.bench.report_tables`, its plots from :mod:`~transferdet.bench.plots`.
"""

from __future__ import annotations

import base64
import csv
import html
import io
from dataclasses import asdict
from pathlib import Path

from transferdet.atomic import atomic_write_bytes
from transferdet.bench.bootstrap import MEASURES
from transferdet.bench.correlate import POOLED
from transferdet.bench.plots import ap_plot, heatmap_plot, interval_plot, scatter_plot
from transferdet.bench.report_data import (
    ALL,
    PRETRAINED,
    REPLICATES,
    ReportData,
    dataset_names,
    in_scope,
    load_report_data,
)
from transferdet.bench.report_summary import summary_lines
from transferdet.bench.report_tables import (
    ap_table,
    correlation_table,
    html_table,
    interval_text,
    markdown_table,
    scores_table,
    summary_table,
)
from transferdet.bench.report_within import within_records, within_section

__all__ = ["build_report", "load_report_data"]

FOLD = 10  # a table longer than this shows its top rows, the whole folded beneath (<details>)

CSS = """
body { font-family: -apple-system, 'Segoe UI', Roboto, sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; line-height: 1.45; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 1.8em; }
table { border-collapse: collapse; margin: .8em 0; font-size: .88em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f3f3f3; } #summary { background: #f6f8fa; border: 1px solid #ddd; padding: .2em 1em; }
details > summary { cursor: pointer; color: #555; } img { max-width: 100%; display: block; margin: .8em 0; }
.note { color: #555; font-size: .9em; } .failed { color: #a00; }
"""


class Document:
    """The report written twice at once: Markdown (plots as files in ``plots/``) and HTML (plots inline)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.md: list[str] = []
        self.parts: list[str] = []

    def heading(self, text: str, level: int = 2) -> None:
        self.md.append(f"{'#' * level} {text}\n")
        self.parts.append(f"<h{level}>{html.escape(text)}</h{level}>")

    def paragraph(self, text: str) -> None:
        self.md.append(text + "\n")
        self.parts.append(f"<p class='note'>{html.escape(text)}</p>")

    def table(self, header: list[str], rows: list[list[str]], fold: int | None = None) -> None:
        """A table; longer than ``fold`` rows, its top ``fold`` rows shown and the whole folded beneath."""
        if fold is None or len(rows) <= fold:
            self.md.append(markdown_table(header, rows) + "\n")
            self.parts.append(html_table(header, rows))
            return
        label = f"all {len(rows)} rows"
        self.md.append(markdown_table(header, rows[:fold]) + "\n")
        self.md.append(f"<details><summary>{label}</summary>\n\n{markdown_table(header, rows)}\n\n</details>\n")
        self.parts.append(html_table(header, rows[:fold]))
        self.parts.append(f"<details><summary>{label}</summary>{html_table(header, rows)}</details>")

    def summary(self, lines: list[str]) -> None:
        """The answer first: a short list under its own heading (``id='summary'`` on the page)."""
        self.md.append("## Summary\n\n" + "".join(f"- {line}\n" for line in lines))
        items = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
        self.parts.append(f"<section id='summary'><h2>Summary</h2><ul>{items}</ul></section>")

    def plot(self, name: str, png: str | None, caption: str) -> None:
        if png is None:
            return
        (self.folder / "plots").mkdir(exist_ok=True)
        (self.folder / "plots" / f"{name}.png").write_bytes(base64.b64decode(png))
        self.md.append(f"![{caption}](plots/{name}.png)\n")
        self.parts.append(f"<img alt='{html.escape(caption)}' src='data:image/png;base64,{png}'>")

    def write(self, md_path: Path, html_path: Path, title: str) -> None:
        atomic_write_bytes(md_path, "\n".join(self.md).encode())
        page = (
            f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body>{''.join(self.parts)}</body></html>"
        )
        atomic_write_bytes(html_path, page.encode())


def _overview(doc: Document, data: ReportData) -> None:
    config = data.config
    doc.heading("transferdet benchmark report", 1)
    done = sum(j["status"] == "done" for j in data.jobs)
    failed = sum(j["status"] == "failed" for j in data.jobs)
    doc.paragraph(
        f"{len(config.get('models', []))} models x {len(config.get('datasets', []))} dataset(s); detector "
        f"{config.get('detector')} with recipe {config.get('recipe')}, {config.get('trials')} trial(s); "
        f"target {data.target}. Jobs: {done} of {len(data.jobs)} done, {failed} failed."
    )
    doc.summary(summary_lines(data))
    for index, scope in enumerate(sorted({s.scope for s in data.summaries}, key=[ALL, PRETRAINED].index)):
        doc.heading(f"All datasets pooled, {scope} (90% bootstrap intervals)")
        ceiling = data.ceilings.get(scope, {})
        noise = ", ".join(
            f"{m} {interval_text(ceiling[m])}" for m in ("kendall", "weighted_tau", "pearson") if m in ceiling
        )
        doc.paragraph(
            f"Scores and {data.target} standardised per dataset; intervals from {REPLICATES} replicates resampling "
            "datasets and trials; gain in τ: over the best baseline in this scope, paired. Noise ceiling (trial 0's "
            f"{data.target} ranking trial 1's over every pair, targets resampled; a score that ties pairs, as the "
            f"card ties one architecture's checkpoints, can pass it under τ-b): {noise or 'n/a (one trial)'}."
        )
        doc.table(*summary_table(data, scope), fold=FOLD)
        doc.plot(f"intervals-{index}", interval_plot(data, scope), f"pooled Kendall tau, {scope}")
    if any(c.dataset == POOLED for c in in_scope(data)):
        doc.plot("kendall-pooled", heatmap_plot(data, POOLED), "Kendall tau, pooled")


def _dataset_section(doc: Document, data: ReportData, index: int, dataset: str) -> None:
    config = data.config
    doc.heading(f"Dataset {dataset}")
    doc.table(*ap_table(data, dataset))
    doc.plot(f"ap-{index}", ap_plot(data, dataset), f"{data.target} per model on {dataset}")
    doc.heading("How well each metric predicted fine-tuned AP", 3)
    doc.table(*correlation_table(data, dataset), fold=FOLD)
    if any(c.scope == PRETRAINED and c.dataset == dataset for c in data.correlations):
        doc.heading("... within the pretrained sources only", 3)
        doc.table(*correlation_table(data, dataset, PRETRAINED), fold=FOLD)
    doc.plot(f"kendall-{index}", heatmap_plot(data, dataset), f"Kendall tau on {dataset}")
    layers = [(layer, f) for layer in config.get("layers", []) for f in config.get("features", [])]
    for position, (layer, features) in enumerate(layers):
        doc.heading(f"Scores ({layer}, {features}; best per metric in bold)", 3)
        doc.table(*scores_table(data, dataset, layer, features), fold=FOLD)
        scatter = scatter_plot(data, dataset, layer, features)
        doc.plot(f"scatter-{index}-{position}", scatter, f"score vs {data.target}, {dataset}")


def _failures(doc: Document, data: ReportData) -> None:
    failed = [j for j in data.jobs if j["status"] == "failed"]
    if not failed:
        return
    doc.heading("Failed jobs")
    rows = [
        [j["kind"], j["dataset"], j["model"], str(j["trial"] if j["trial"] is not None else ""), j["error"] or ""]
        for j in failed
    ]
    doc.table(["kind", "dataset", "model", "trial", "error"], rows)


def build_report(bench_dir: Path, data: ReportData | None = None) -> tuple[Path, Path]:
    """Write report.md, report.html and the CSV files from ``bench_dir``'s store (``data``: what
    :func:`load_report_data` read from it, where the caller has it)."""
    data = data or load_report_data(bench_dir)
    doc = Document(bench_dir)
    _overview(doc, data)
    for index, dataset in enumerate(dataset_names(data)):
        _dataset_section(doc, data, index, dataset)
    within_section(doc, data)
    _failures(doc, data)
    md_path, html_path = bench_dir / "report.md", bench_dir / "report.html"
    doc.write(md_path, html_path, "transferdet benchmark report")
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

    write("correlations.csv", correlation_records(data))
    write("within.csv", within_records(data))
    write("scores.csv", [{k: v for k, v in r.items() if k != "job_id"} for r in data.scores])
    write("ap.csv", [{k: v for k, v in r.items() if k != "job_id"} for r in data.ap])


def correlation_records(data: ReportData) -> list[dict]:
    """correlations.csv: every correlation, the pooled ones with their intervals (``_low``,
    ``_high``) and gain in tau over the best baseline of their scope (``against``)."""
    summaries = {(s.scope, s.metric, s.layer, s.features): s for s in data.summaries}
    records = []
    for correlation in data.correlations:
        record = asdict(correlation)
        key = (correlation.scope, correlation.metric, correlation.layer, correlation.features)
        found = summaries.get(key) if correlation.dataset == POOLED else None
        for name in MEASURES:
            interval = found.measures[name] if found else None
            record[f"{name}_low"] = interval.low if interval else None
            record[f"{name}_high"] = interval.high if interval else None
        gain = found.gain if found else None
        record.update(
            gain=gain.value if gain else None,
            gain_low=gain.low if gain else None,
            gain_high=gain.high if gain else None,
            against=found.against if found else None,
        )
        records.append(record)
    return records
