"""``transferdet data ...``: inspect, convert, synthesize, sub-sample and show detection datasets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from transferdet.cli.common import (
    ImageMode,
    InputFormat,
    OutputFormat,
    OverwriteOption,
    err_console,
    out_console,
    progress_bar,
    read_dataset,
)
from transferdet.cli.data_options import AS_READ, DataArgs, data_options
from transferdet.data import formats
from transferdet.data.dataset import DetectionDataset
from transferdet.data.formats.base import WriteOptions
from transferdet.data.validation import PROBLEM_KEYS, apply_bad_box_policy, count_problems
from transferdet.errors import TransferdetError

app = typer.Typer(
    help="Inspect, convert, synthesize, sub-sample and show detection datasets.",
    no_args_is_help=True,
    rich_markup_mode=None,  # help texts hold literal brackets such as ARCH[@WEIGHTS]
)


def dataset_summary(dataset: DetectionDataset, split: str | None = None) -> dict[str, Any]:
    """The ``data info --json`` object: per split, counts as annotated and problems."""
    if split is not None:
        try:
            dataset = dataset.select(split)
        except KeyError as error:
            raise TransferdetError(str(error.args[0])) from None
    problems = count_problems(dataset)
    splits = {}
    for name in dataset.splits:
        per_class = dataset.boxes_per_class(name)
        splits[name] = {
            "images": len(dataset.splits[name]),
            "boxes": dataset.num_boxes(name),
            "classes": list(dataset.classes),
            "boxes_per_class": per_class,
            "classes_without_boxes": [c for c, n in per_class.items() if n == 0],
            "problems": problems[name],
        }
    overall = dataset.boxes_per_class()
    return {
        "format": dataset.source_format,
        "split_origin": dataset.split_origin,
        "classes": list(dataset.classes),
        "classes_without_boxes": [c for c, n in overall.items() if n == 0],
        "splits": splits,
    }


def _print_summary(path: Path, summary: dict[str, Any]) -> None:
    out_console.print(
        f"[bold]{path}[/bold]  format [cyan]{summary['format']}[/cyan]  splits from {summary['split_origin']}"
    )
    splits = summary["splits"]
    table = Table(title="Splits (counts as annotated)")
    for column in ("split", "images", "boxes", "classes with boxes"):
        table.add_column(column, justify="left" if column == "split" else "right")
    for name, info in splits.items():
        with_boxes = sum(1 for n in info["boxes_per_class"].values() if n)
        table.add_row(name, str(info["images"]), str(info["boxes"]), str(with_boxes))
    out_console.print(table)
    problems = Table(title="Problems")
    problems.add_column("problem")
    for name in splits:
        problems.add_column(name, justify="right")
    for key in PROBLEM_KEYS:
        counts = [splits[name]["problems"][key] for name in splits]
        problems.add_row(key.replace("_", " "), *(f"[yellow]{c}" if c else "0" for c in counts))
    out_console.print(problems)
    classes = Table(title=f"Boxes per class ({len(summary['classes'])} classes)")
    classes.add_column("class")
    for name in summary["splits"]:
        classes.add_column(name, justify="right")
    for name in summary["classes"]:
        counts = [summary["splits"][s]["boxes_per_class"][name] for s in summary["splits"]]
        style = "dim" if not any(counts) else ""
        classes.add_row(name, *(str(c) for c in counts), style=style)
    out_console.print(classes)
    if summary["classes_without_boxes"]:
        out_console.print("classes without boxes: " + ", ".join(summary["classes_without_boxes"]))


def _report_written(dst: Path, format: str, dataset: DetectionDataset) -> None:
    sizes = ", ".join(f"{len(r)} {s}" for s, r in dataset.splits.items())
    boxes, classes = dataset.num_boxes(), len(dataset.classes)
    out_console.print(f"wrote {dst} ({format}): {sizes} images, {boxes} boxes, {classes} classes")


@app.command()
@data_options
def info(
    path: Annotated[Path, typer.Argument(help="Dataset folder or annotation file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout instead of tables.")] = False,
    data_args: DataArgs = AS_READ,
) -> None:
    """Count images, boxes and classes per split, and every problem in the annotations (counted as annotated;
    --on-bad-box error stops at the first bad box)."""
    dataset = read_dataset(path, InputFormat(data_args.format), data_args.read, data_args.seed())
    apply_bad_box_policy(dataset, data_args.on_bad_box if data_args.on_bad_box == "error" else "keep")
    summary = dataset_summary(dataset, data_args.split)
    if as_json:
        print(json.dumps(summary))
    else:
        _print_summary(path, summary)


@app.command()
@data_options
def convert(
    src: Annotated[Path, typer.Argument(help="Dataset to read.")],
    dst: Annotated[Path, typer.Argument(help="Folder to write (must not exist, unless --overwrite).")],
    to: Annotated[OutputFormat, typer.Option("--to", help="Format to write.")],
    image_mode: Annotated[
        ImageMode, typer.Option(help="How images reach DST: copy, hard link (copy across devices) or symlink.")
    ] = ImageMode.copy,
    overwrite: OverwriteOption = False,
    data_args: DataArgs = AS_READ,
) -> None:
    """Convert a dataset to another format, keeping boxes, class names and splits (--split: only those)."""
    dataset = read_dataset(src, InputFormat(data_args.format), data_args.read, data_args.seed())
    dataset = apply_bad_box_policy(_only(dataset, data_args.split), data_args.on_bad_box)
    formats.write(dataset, dst, to.value, WriteOptions(image_mode=image_mode.value), overwrite=overwrite)
    _report_written(dst, to.value, dataset)


def _only(dataset: DetectionDataset, split: str | None) -> DetectionDataset:
    """The dataset's ``split`` splits only (all where None); an unknown one is a one-line error."""
    if split is None:
        return dataset
    try:
        return dataset.select(split)
    except KeyError as error:
        raise TransferdetError(str(error.args[0])) from None


@app.command()
def synth(
    dst: Annotated[Path, typer.Argument(help="Folder to write the dataset to.")],
    source: Annotated[str, typer.Option(help="Glyphs: digits, letters, symbols or shapes.")] = "digits",
    images: Annotated[int, typer.Option("--images", help="Number of images.")] = 400,
    size: Annotated[int, typer.Option(help="Canvas side in pixels (objects scale with it).")] = 128,
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same dataset.")] = 0,
    classes: Annotated[
        int | None, typer.Option("--classes", help="Use only the first N classes of the source.")
    ] = None,
    test_fraction: Annotated[float, typer.Option(help="Fraction of images in the test split.")] = 0.2,
    max_objects: Annotated[int, typer.Option(help="At most this many objects per image (at least 1).")] = 5,
    noise: Annotated[float, typer.Option(help="Std of Gaussian pixel noise, in [0, 1] intensity units.")] = 0.0,
    clutter: Annotated[int, typer.Option(help="Unannotated glyph fragments per image.")] = 0,
    to: Annotated[OutputFormat, typer.Option("--to", help="Format to write.")] = OutputFormat.coco,
    overwrite: OverwriteOption = False,
) -> None:
    """Make MNIST-like detection data: glyphs on a black canvas, with tight boxes and instance masks."""
    from transferdet.data.glyphs import SOURCES
    from transferdet.data.synthetic import SynthConfig, synthesize

    if source not in SOURCES:
        raise TransferdetError(f"--source {source!r}: choose from {', '.join(SOURCES)}")
    if max_objects < 1:
        raise TransferdetError("--max-objects must be at least 1")
    config = SynthConfig(source, images, size, seed, test_fraction, max_objects, noise, clutter, classes)
    with progress_bar() as bar:
        task = bar.add_task(f"drawing {source}", total=images)
        dataset = synthesize(config, dst, to.value, overwrite, lambda n: bar.update(task, completed=n))
    _report_written(dst, to.value, dataset)


@app.command()
@data_options
def subsample(
    src: Annotated[Path, typer.Argument(help="Dataset to draw from (all splits pooled).")],
    dst: Annotated[Path, typer.Argument(help="Folder to write subset-NN/ datasets and subsets.json to.")],
    datasets: Annotated[int, typer.Option("--datasets", help="Number of sub-datasets.")] = 5,
    classes: Annotated[int, typer.Option("--classes", help="Classes per sub-dataset.")] = 3,
    train: Annotated[int, typer.Option("--train", help="Training images per sub-dataset.")] = 100,
    test: Annotated[int, typer.Option("--test", help="Test images per sub-dataset.")] = 50,
    min_images: Annotated[int, typer.Option(help="Keep classes present in more than this many images.")] = 10,
    seed: Annotated[int, typer.Option(help="Seed of the draws.")] = 0,
    to: Annotated[OutputFormat, typer.Option("--to", help="Format to write.")] = OutputFormat.coco,
    image_mode: Annotated[ImageMode, typer.Option(help="How images reach DST.")] = ImageMode.copy,
    overwrite: OverwriteOption = False,
    data_args: DataArgs = AS_READ,
) -> None:
    """Draw bootstrapped sub-datasets by class co-occurrence (the TMOD paper's "Real 2" recipe), from all
    splits pooled (--split: those only)."""
    from transferdet.data.subsample import SubsampleConfig, bootstrap_subsets, write_subsets

    dataset = _only(data_args.load(src), data_args.split)
    config = SubsampleConfig(datasets, classes, train, test, min_images, seed)
    subsets = bootstrap_subsets(dataset, config)
    write_subsets(subsets, dst, config, to.value, image_mode.value, overwrite)
    table = Table(title=f"{len(subsets)} sub-datasets in {dst}")
    for column in ("name", "classes", "train images", "test images", "train boxes"):
        table.add_column(column)
    for i, subset in enumerate(subsets):
        table.add_row(
            f"subset-{i:02d}",
            ", ".join(subset.classes),
            str(len(subset.splits["train"])),
            str(len(subset.splits["test"])),
            str(subset.num_boxes("train")),
        )
    out_console.print(table)


@app.command()
@data_options
def show(
    path: Annotated[Path, typer.Argument(help="Dataset folder or annotation file.")],
    out: Annotated[Path, typer.Option("--out", help="Picture to write (PNG or JPEG).")],
    n: Annotated[int, typer.Option("--n", help="Number of images in the grid.")] = 16,
    tile: Annotated[int, typer.Option(help="Side of each grid cell in pixels.")] = 256,
    seed: Annotated[int, typer.Option(help="Seed choosing the images.")] = 0,
    data_args: DataArgs = AS_READ,
) -> None:
    """Draw a grid of images with their boxes, class names and shaded masks."""
    from transferdet.data.show import render_grid, save_grid

    dataset = read_dataset(path, InputFormat(data_args.format), data_args.read, data_args.seed())
    dataset = apply_bad_box_policy(dataset, data_args.on_bad_box)
    try:
        picture = render_grid(dataset, data_args.split, n, seed, tile)
    except KeyError as error:
        raise TransferdetError(str(error.args[0])) from None
    save_grid(picture, out)
    out_console.print(f"wrote {out}")


__all__ = ["app", "dataset_summary", "err_console"]
