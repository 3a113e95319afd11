"""Each raced candidate's inference cost (:mod:`~transferdet.models.inference_cost`), measured on its
own run's detector (the weights of the last rung it reached; the winner's finished run) at batch 1 on
the first validation image, resized by the detector to the recipe's test size; and the figure a
person would rather look at than read: validation score against latency, the Pareto front marked."""

from __future__ import annotations

from pathlib import Path

from transferdet.bench.plots import pyplot, save_png, titled


def race_costs(data: Path, out: Path, raced: list[str], trained: list[str], settings) -> dict[str, dict]:  # noqa: ANN001
    """candidate -> its cost record (``latency_ms``, ``latency_iqr_ms``, ``params``, ``flops``, ...), for
    the ``trained`` candidates of the race ``raced`` (whose order names their folders). Each is measured
    once per race folder and kept in ``inference-costs.json``, so that a race started again (and a pick
    by speed) reads the same figures."""
    import json

    from transferdet.atomic import atomic_write_bytes

    kept_file = out / "inference-costs.json"
    kept = json.loads(kept_file.read_text(encoding="utf-8")) if kept_file.is_file() else {}
    missing = [name for name in trained if name not in kept]
    if missing:
        kept |= _measure(data, out, raced, missing, settings)
        atomic_write_bytes(kept_file, json.dumps(kept, indent=1).encode())
    return {name: kept[name] for name in trained}


def _measure(data: Path, out: Path, raced: list[str], trained: list[str], settings) -> dict[str, dict]:  # noqa: ANN001
    from PIL import Image
    from torchvision.transforms.v2 import functional as F

    from transferdet.models.inference_cost import detector_cost
    from transferdet.run_detector import load_detector
    from transferdet.runs import RunDir
    from transferdet.select.rung_jobs import run_folder
    from transferdet.train.engine import job_data

    dataset, _, _, validation = job_data(settings.probe(data))
    first = dataset.records(validation)[0]
    with Image.open(first.path) as opened:
        image = F.pil_to_tensor(opened.convert("RGB")).float() / 255
    costs = {}
    for name in trained:
        model, _ = load_detector(RunDir(run_folder(out, raced, name)), settings.device)
        cost = detector_cost(model, image, settings.device, settings.threads, settings.latency_runs,
                             settings.latency_seconds)  # fmt: skip
        costs[name] = cost.as_dict()
    return costs


def pareto_front(points: dict[str, tuple[float, float]]) -> list[str]:
    """The names no other point beats on both (lower latency, higher score), fastest first."""
    front = [
        name for name, (latency, score) in points.items()
        if not any(o[0] <= latency and o[1] >= score and o != (latency, score) for o in points.values())
    ]  # fmt: skip
    return sorted(front, key=lambda name: points[name][0])


def last_score(row: dict) -> float | None:
    """A candidate's validation score at the last rung it reached."""
    reached = [(int(k), v) for k, v in row["rungs"].items() if v is not None]
    return max(reached)[1] if reached else None


def write_pareto(summary: dict, path: Path) -> Path | None:
    """``pareto.png``: each raced candidate's validation score (at the last rung it reached) against
    its latency, the Pareto front joined; None where no candidate has both."""
    points = {row["model"]: (row["latency_ms"], last_score(row)) for row in summary["candidates"]
              if row.get("latency_ms") is not None and last_score(row) is not None}  # fmt: skip
    if not points:
        return None
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(6.4, 4.0))
    front = pareto_front(points)
    for name, (latency, score) in points.items():
        axes.scatter(latency, score, s=40 if name in front else 20, color="C0" if name in front else "0.6", zorder=3)
        axes.annotate(name, (latency, score), fontsize=7, xytext=(4, 3), textcoords="offset points")
    axes.plot([points[n][0] for n in front], [points[n][1] for n in front], color="C0", linewidth=1.2,
              label="Pareto front")  # fmt: skip
    device = next(row["device"] for row in summary["candidates"] if row.get("device"))
    ylabel = f"validation {summary['target']} at the last rung reached"
    titled(axes, f"latency, ms (batch 1, median; {device})", ylabel, "select: score against speed")
    return save_png(figure, path)
