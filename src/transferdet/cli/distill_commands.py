"""``transferdet distill teacher``: the classification teacher of classifier-to-detector distillation
(the student side is ``transferdet train --distill-from``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from transferdet.cli.common import DeviceOption, PluginOption, out_console, progress_bar, use_plugins
from transferdet.cli.data_options import AS_READ, DataArgs, data_options
from transferdet.devices import default_device

app = typer.Typer(
    help=(
        "Classifier-to-detector distillation: train the classification teacher on box crops "
        "(then `transferdet train --distill-from`)."
    ),
    no_args_is_help=True,
    rich_markup_mode=None,
)


@app.command()
@data_options
def teacher(
    data: Annotated[Path, typer.Option(help="Detection dataset whose ground-truth boxes are cropped.")],
    arch: Annotated[
        str,
        typer.Option(help="Classifier ARCH[@WEIGHTS], e.g. timm:resnet18 or torchvision:mobilenet_v2@imagenet.pth."),
    ],
    out: Annotated[Path, typer.Option(help="Folder for the teacher (its weights and a JSON record).")],
    crop_size: Annotated[int, typer.Option(help="Side of the square crops, in pixels.")] = 112,
    margin: Annotated[float, typer.Option(help="Context added on each side, as a fraction of the box size.")] = 0.2,
    epochs: Annotated[int, typer.Option(help="Passes over the training crops.")] = 8,
    batch_size: Annotated[int, typer.Option(help="Crops per step.")] = 32,
    flip: Annotated[float, typer.Option(help="Horizontal flip probability (0 for glyphs and text).")] = 0.5,
    seed: Annotated[int, typer.Option(help="Seed of the data order, flips and initialisation.")] = 0,
    device: DeviceOption = None,
    plugin: PluginOption = [],  # noqa: B006 - typer reads the default
    data_args: DataArgs = AS_READ,
) -> None:
    """Train the classification teacher on crops of the ground-truth boxes (with context) and
    report its accuracy on the test split's crops."""
    use_plugins(plugin)
    from transferdet.distill.teacher_training import TeacherConfig, train_teacher

    config = TeacherConfig(
        arch=arch, crop_size=crop_size, margin=margin, epochs=epochs, batch_size=batch_size, flip=flip, seed=seed
    )
    with progress_bar() as bar:
        task = bar.add_task("teacher", total=None)
        record = train_teacher(
            data,
            config,
            out,
            default_device(device),
            lambda step, total, loss: bar.update(
                task, completed=step, total=total, description=f"teacher loss {loss:.3f}"
            ),
            data_args,
        )
    accuracy = (
        f"{record['accuracy']:.3f} on {record['test_crops']} {record['test_split']} crops"
        if "accuracy" in record
        else "n/a (no test split)"
    )
    out_console.print(f"teacher {arch}: {record['train_crops']} training crops; crop accuracy {accuracy}; in {out}")
