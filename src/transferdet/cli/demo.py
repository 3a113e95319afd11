"""``transferdet demo``: the whole product on built-in synthetic data, offline (see
:mod:`transferdet.bench.demo` for what it runs)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from transferdet.cli.common import DeviceOption, err_console, out_console, progress_bar
from transferdet.devices import default_device
from transferdet.models.specs import split_spec


def _zoo(device: str, smoke: bool) -> list:
    from transferdet.bench.demo import build_zoo

    with progress_bar() as bar:
        tasks: dict[str, int] = {}

        def show(name: str, step: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(f"pretraining {name}", total=total)
            bar.update(tasks[name], completed=step)

        members = build_zoo(device, smoke, show)
    for entry, record in members:
        if record is not None:
            accuracy = f"{record['source']} crop accuracy {record['accuracy']:.2f}"
            err_console.print(f"zoo: {entry.name} ({accuracy}) at {split_spec(entry.spec)[1]}")
    return [entry for entry, _ in members]


def demo(
    out: Annotated[Path, typer.Option(help="Folder for everything the demo writes.")] = Path("transferdet-demo"),
    seed: Annotated[int, typer.Option(help="Seed of the target data and of the fine-tuning.")] = 0,
    device: DeviceOption = None,
    smoke: Annotated[
        bool, typer.Option("--smoke", help="Every stage on a toy scale, to check an install (about a minute).")
    ] = False,
) -> None:
    """Rank a zoo of 6 backbones on a synthetic detection dataset, fine-tune each, and report how
    well every transferability metric predicted the fine-tuned AP (about 6 minutes on 2 CPU cores
    from a cold cache; re-running reuses what is done).

    Writes OUT/data-... (the target dataset, COCO), OUT/data.png, OUT/bench.yaml (to re-run or
    extend it with `transferdet bench`), OUT/results.sqlite, OUT/runs/, OUT/report.html and OUT/report.md.
    """
    from transferdet.bench.demo import demo_config, draw_target, target_config, write_config
    from transferdet.bench.report import build_report, load_report_data
    from transferdet.bench.runner import jobs_to_run, run_bench
    from transferdet.cli.bench_commands import job_progress, print_summary

    start = time.perf_counter()
    device = default_device(device)
    out.mkdir(parents=True, exist_ok=True)
    models = _zoo(device, smoke)
    target = target_config(seed, smoke)
    with progress_bar(transient=True) as bar:
        task = bar.add_task(f"drawing {target.source}", total=target.images)
        data = draw_target(out, target, lambda n: bar.update(task, completed=n))
    err_console.print(f"target: {target.images} images of {target.source} in {data} (picture: {out / 'data.png'})")
    config = demo_config(models, data, target, smoke)
    write_config(config, out / "bench.yaml")
    with progress_bar() as bar:
        task = bar.add_task("bench", total=jobs_to_run(config, out, device))
        outcome = run_bench(config, out, "local", None, device, job_progress(bar, task))
    data = load_report_data(out)
    _, page = build_report(out, data)
    minutes, seconds = divmod(time.perf_counter() - start, 60)
    out_console.print(
        f"demo done in {int(minutes)} min {seconds:.0f} s ({outcome.ran} jobs run, {outcome.skipped} reused)"
    )
    print_summary(data, page)
