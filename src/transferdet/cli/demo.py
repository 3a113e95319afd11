"""``transferdet demo``: the whole product on built-in synthetic data, offline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from transferdet.cli.common import out_console, progress_bar
from transferdet.cli.data_commands import _print_summary, dataset_summary


def demo(
    out: Annotated[Path, typer.Option(help="Folder for everything the demo writes.")] = Path("transferdet-demo"),
    images: Annotated[int, typer.Option(help="Images in the synthetic target dataset.")] = 200,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic data.")] = 0,
) -> None:
    """Generate a synthetic detection dataset, print its summary and draw it.

    Stages still to come (ranking a zoo of backbones, fine-tuning them, the report) will be added
    to this command as they land.
    """
    from transferdet.data.show import render_grid, save_grid
    from transferdet.data.synthetic import SynthConfig, synthesize

    data_dir = out / "data"
    with progress_bar() as bar:
        task = bar.add_task("drawing digits", total=images)
        dataset = synthesize(
            SynthConfig(source="digits", images=images, seed=seed),
            data_dir,
            overwrite=True,
            progress=lambda n: bar.update(task, completed=n),
        )
    _print_summary(data_dir, dataset_summary(dataset))
    picture = out / "data.png"
    save_grid(render_grid(dataset, "train", 16, seed), picture)
    out_console.print(f"dataset in {data_dir} (COCO JSON), picture in {picture}")
