"""select's learning-curve figure: each candidate's validation score at the rungs it reached, the
winner's line drawn heavier, the rungs marked (``race.png``)."""

from __future__ import annotations

from pathlib import Path

from transferdet.bench.plots import pyplot, save_png, titled


def write_curves(summary: dict, path: Path) -> Path:
    """``race.png``: validation ``target`` against iteration, one line per candidate raced."""
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(6.4, 4.0))
    for row in summary["candidates"]:
        reached = sorted((int(k), v) for k, v in row["rungs"].items() if v is not None)
        if not reached:
            continue
        winner = row["model"] == summary["winner"]
        axes.plot(*zip(*reached, strict=True), marker="o", linewidth=2.5 if winner else 1.0,
                  label=row["model"] + (" (pick)" if winner else ""))  # fmt: skip
    for rung in summary["plan"]["rungs"]:
        axes.axvline(rung, color="0.85", linewidth=0.8, zorder=0)
    from matplotlib.ticker import MaxNLocator

    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    titled(axes, f"iteration (of {summary['plan']['total']})", f"validation {summary['target']}", "select: the race")
    return save_png(figure, path)
