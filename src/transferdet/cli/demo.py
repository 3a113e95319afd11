"""``transferdet demo``: the whole product on built-in synthetic data, offline.

1. a zoo of backbones: two architectures at random init and pretrained on synthetic source
   domains (letters, digits) for different lengths, cached in the user cache folder;
2. a synthetic target dataset unlike the sources (procedural shapes, with noise and clutter);
3. a benchmark (the same machinery as ``transferdet bench``): rank the zoo with every metric,
   fine-tune each backbone, correlate, report.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
import yaml

from transferdet.cli.common import default_device, err_console, out_console, progress_bar

# (name, architecture, source domain or None for random init, pretraining steps): two
# architectures, random or pretrained on letters or digits, long or short
ZOO = (
    ("resnet10t-random", "timm:resnet10t", None, 0),
    ("resnet10t-letters-200", "timm:resnet10t", "letters", 200),
    ("resnet10t-letters-30", "timm:resnet10t", "letters", 30),
    ("resnet10t-digits-200", "timm:resnet10t", "digits", 200),
    ("mobilenetv3s-random", "timm:mobilenetv3_small_100", None, 0),
    ("mobilenetv3s-letters-200", "timm:mobilenetv3_small_100", "letters", 200),
)
TARGET = {"source": "shapes", "images": 240, "size": 128, "noise": 0.05, "clutter": 2}
# the TMOD paper's transfer protocol in short: the backbone body frozen (BatchNorm statistics
# included), new FPN and heads trained; what the ranking metrics measure is then exactly the
# quality of the frozen features
FINE_TUNE = {
    "epochs": 12,
    "fpn_channels": 64,
    "freeze_body": True,
    "norm": "frozen_bn",
    "warmup_iterations": 20,
    "checkpoint_every": 50,
}


# --smoke: every stage on a toy scale (about a minute; the numbers mean nothing)
SMOKE_TARGET = {"images": 30, "size": 64}
SMOKE_FINE_TUNE = {"iterations": 3, "min_size": [64], "max_size": 64, "test_size": 64, "warmup_iterations": 1}


def build_zoo(device: str, smoke: bool = False) -> list[dict]:
    """Pretrain (or reuse from the cache) every zoo backbone; returns bench model entries."""
    from transferdet.zoo.pretrain import PretrainConfig, pretrain, pretrained_path, read_record

    models = []
    with progress_bar() as bar:
        for name, arch, source, steps in ZOO:
            if source is None:
                models.append({"name": name, "spec": f"{arch}@random"})
                continue
            config = PretrainConfig(source=source, arch=arch, steps=max(1, steps // 100) if smoke else steps)
            path = pretrained_path(config)
            if path.is_file():
                record = read_record(path)
            else:
                task = bar.add_task(f"pretraining {name}", total=steps)
                record = pretrain(
                    config,
                    path,
                    device,
                    lambda step, total, loss, t=task: bar.update(t, completed=step),
                )
            err_console.print(f"zoo: {name} ({source} crop accuracy {record['accuracy']:.2f}) at {path}")
            models.append({"name": name, "spec": f"{arch}@{path}"})
    return models


def demo(
    out: Annotated[Path, typer.Option(help="Folder for everything the demo writes.")] = Path("transferdet-demo"),
    seed: Annotated[int, typer.Option(help="Seed of the target data and of the fine-tuning.")] = 0,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:1, ... (default: cuda if available).")] = None,
    smoke: Annotated[
        bool, typer.Option("--smoke", help="Every stage on a toy scale, to check an install (about a minute).")
    ] = False,
) -> None:
    """Rank a zoo of 6 backbones on a synthetic detection dataset, fine-tune each, and report how
    well every transferability metric predicted the fine-tuned AP (about 6 minutes on 2 CPU cores
    from a cold cache; re-running reuses what is done).

    Writes OUT/data-... (the target dataset, COCO), OUT/data.png, OUT/bench.yaml, OUT/results.sqlite,
    OUT/runs/, OUT/report.html and OUT/report.md.
    """
    from transferdet.bench.config import load_config
    from transferdet.bench.report import build_report
    from transferdet.bench.runner import jobs_to_run, run_bench
    from transferdet.cli.bench_commands import correlation_console_table, job_progress
    from transferdet.data.show import render_grid, save_grid
    from transferdet.data.synthetic import SynthConfig, synthesize

    start = time.perf_counter()
    device = default_device(device)
    out.mkdir(parents=True, exist_ok=True)
    models = build_zoo(device, smoke)

    target = SynthConfig(seed=seed, **{**TARGET, **(SMOKE_TARGET if smoke else {})})
    # named by its settings: a re-run with other settings draws (and benchmarks) a new dataset
    data_dir = out / f"data-{target.source}-{target.images}x{target.size}px-seed{seed}"
    if not data_dir.exists():  # written atomically: present means complete
        with progress_bar(transient=True) as bar:
            task = bar.add_task(f"drawing {target.source}", total=target.images)
            dataset = synthesize(target, data_dir, progress=lambda n: bar.update(task, completed=n))
        save_grid(render_grid(dataset, "train", 16, seed), out / "data.png")
    err_console.print(f"target: {target.images} images of {target.source} in {data_dir} (picture: {out / 'data.png'})")

    config_path = out / "bench.yaml"
    config = {
        "datasets": [{"name": f"synthetic-{target.source}", "path": data_dir.name}],
        "models": models,
        "detector": "fcos",
        "recipe": "quick",
        "recipe_overrides": {**FINE_TUNE, **(SMOKE_FINE_TUNE if smoke else {})},
        "trials": 1,
        "seed": seed,
        "layers": ["c4", "c5"],
        "features": ["local"],
        "image_size": target.size,
        "target": "AP50",
    }
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    settings = load_config(config_path)
    with progress_bar() as bar:
        task = bar.add_task("bench", total=jobs_to_run(settings, out, device))
        on_job = job_progress(bar, task)
        outcome = run_bench(settings, out, "local", None, device, on_job)
    md, page = build_report(out)
    out_console.print(correlation_console_table(out))
    minutes, seconds = divmod(time.perf_counter() - start, 60)
    out_console.print(
        f"demo done in {int(minutes)} min {seconds:.0f} s ({outcome.ran} jobs run, {outcome.skipped} reused); "
        f"report: {page}"
    )
