"""A run's summary picture: loss curves, learning rate and AP per evaluation, from its log."""

from __future__ import annotations

import io
from pathlib import Path

from transferdet.atomic import atomic_write_bytes
from transferdet.runs import RunDir


def write_summary(run: RunDir) -> Path:
    """Plot the run's log (and final metrics, if present) into its summary picture."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = run.log_rows()
    steps = [r for r in rows if "loss" in r]
    evaluations = [(r["iteration"], r["eval"]) for r in rows if "eval" in r]
    final = run.read_metrics()
    if final is not None and final.get("AP") is not None and steps:
        evaluations.append((steps[-1]["iteration"], {"AP": final["AP"], "AP50": final.get("AP50")}))
    figure, (losses, quality) = plt.subplots(1, 2, figsize=(11, 4))
    iterations = [r["iteration"] for r in steps]
    keys = [k for k in (steps[0] if steps else {}) if k not in ("iteration", "time", "lr")]
    for key in keys:
        losses.plot(iterations, [r[key] for r in steps], label=key, linewidth=1.5 if key == "loss" else 0.8)
    losses.set_xlabel("iteration")
    losses.set_ylabel("loss")
    losses.set_title("training losses")
    if keys:
        losses.legend(fontsize=7)
    rate = losses.twinx()
    rate.plot(iterations, [r["lr"] for r in steps], color="grey", linestyle=":", label="lr")
    rate.set_ylabel("learning rate", color="grey")
    for name in ("AP", "AP50"):
        points = [(i, e[name]) for i, e in evaluations if e.get(name) is not None]
        if points:
            quality.plot(*zip(*points, strict=True), marker="o", label=name)
    quality.set_ylim(0, 1)
    quality.set_xlim(losses.get_xlim())
    quality.set_xlabel("iteration")
    quality.set_title("COCO AP on the test split")
    if evaluations:
        quality.legend()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    atomic_write_bytes(run.summary_file, buffer.getvalue())
    return run.summary_file
