"""``rank``'s scores as tables that fit the terminal they are printed in.

Every score is shown whole, with its rank among the models on the same layer (``=1`` where scores
tie within :data:`~transferdet.ties.TIE_RTOL`). Models get short labels (``m1``, ``m2``, ...) with a
legend when their specs are long; the longer side (metrics or models) runs down the rows; the
columns that do not fit the width go on to a next table that repeats the row labels, as pandas
wraps a wide frame, rather than being cut.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table

from transferdet.models.specs import split_spec

LABEL_LIMIT = 24  # a model whose short spec is longer is shown by a label, explained in the legend


def short_spec(spec: str) -> str:
    """A spec with its checkpoint by its file name."""
    arch, weights = split_spec(spec)
    return arch if weights is None else f"{arch}@{Path(weights).name}"


def model_labels(models: list[str], short: bool = False) -> tuple[dict[str, str], list[str]]:
    """The label of each model and the legend lines (none when every short spec is short, unless
    ``short`` asks for labels anyway)."""
    shorts = [short_spec(m) for m in models]
    if not short and all(len(s) <= LABEL_LIMIT for s in shorts) and len(set(shorts)) == len(shorts):
        return dict(zip(models, shorts, strict=True)), []
    labels = {m: f"m{i + 1}" for i, m in enumerate(models)}
    return labels, [f"{labels[m]} = {s}" for m, s in zip(models, shorts, strict=True)]


def cell_text(score: float, rank: int, tied: bool) -> str:
    return f"{score:.4g} ({'=' if tied else ''}{rank})"


@dataclass
class Grid:
    """Row labels, column headers and cell texts (with which cells lead their column's ranking)."""

    corner: str
    rows: list[str]
    columns: list[str]
    cells: dict[tuple[str, str], str]
    best: set[tuple[str, str]]


def score_grid(rows: list[dict], models: list[str], metrics: list[str], labels: dict[str, str]) -> Grid:
    """Metrics down the rows when they outnumber the models (x layers), else models down the rows."""
    layers = list(dict.fromkeys(r["layer"] for r in rows))
    shown = [m for m in metrics if any(r["metric"] == m for r in rows)]
    entries = [(m, layer) for layer in layers for m in models]
    name = {e: labels[e[0]] + (f" {e[1]}" if len(layers) > 1 else "") for e in entries}
    by_key = {(r["model"], r["layer"], r["metric"]): r for r in rows}
    metrics_down = len(shown) >= len(entries)
    cells, best = {}, set()
    for entry in entries:
        for metric in shown:
            row = by_key.get((*entry, metric))
            key = (metric, name[entry]) if metrics_down else (name[entry], metric)
            if row is None:
                cells[key] = "n/a"
            elif row["score"] is None:
                cells[key] = "failed*"
            else:
                cells[key] = cell_text(row["score"], row["rank"], row.get("tied", False))
                if row["rank"] == 1:
                    best.add(key)
    names = [name[e] for e in entries]
    if metrics_down:
        return Grid("metric", shown, names, cells, best)
    return Grid("model", names, shown, cells, best)


def _column_width(grid: Grid, column: str) -> int:
    return max([len(column)] + [len(grid.cells.get((r, column), "")) for r in grid.rows])


def column_groups(grid: Grid, width: int) -> list[list[str]]:
    """The columns in groups whose table fits ``width`` (a column wider than the space alone)."""
    label_width = max([len(grid.corner)] + [len(r) for r in grid.rows]) + 2
    groups: list[list[str]] = [[]]
    used = label_width
    for column in grid.columns:
        need = _column_width(grid, column) + 2
        if groups[-1] and used + need > width:
            groups.append([])
            used = label_width
        groups[-1].append(column)
        used += need
    return groups


def score_tables(
    rows: list[dict], models: list[str], metrics: list[str], width: int
) -> tuple[list[Table], list[str], dict[str, str]]:
    """The tables that show every score within ``width`` columns, the legend lines and the labels
    the tables call the models by."""
    labels, legend = model_labels(models)
    grid = score_grid(rows, models, metrics, labels)
    groups = column_groups(grid, width)
    if len(groups) > 1 and not legend:  # labels m1, m2, ... may fit where the specs do not
        labels, legend = model_labels(models, short=True)
        grid = score_grid(rows, models, metrics, labels)
        groups = column_groups(grid, width)
    tables = []
    for index, group in enumerate(groups):
        title = "Scores (higher is better; (rank), =: tied)" if index == 0 else None
        table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1), collapse_padding=True)
        table.add_column(grid.corner, no_wrap=True)
        for column in group:
            table.add_column(column, justify="right", no_wrap=True, min_width=_column_width(grid, column))
        for row in grid.rows:
            cells = [grid.cells.get((row, c), "") for c in group]
            styled = [f"[bold green]{t}" if (row, c) in grid.best else t for t, c in zip(cells, group, strict=True)]
            table.add_row(row, *styled)
        tables.append(table)
    return tables, legend, labels


def render(rows: list[dict], models: list[str], metrics: list[str], width: int) -> str:
    """The tables and legend as plain text at ``width`` columns (what a terminal of that width shows)."""
    console = Console(width=width, record=True, file=io.StringIO(), highlight=False)
    tables, legend, _ = score_tables(rows, models, metrics, width)
    for table in tables:
        console.print(table)
    for line in legend:
        console.print(line, overflow="fold")
    return console.export_text()
