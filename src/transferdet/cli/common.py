"""What the CLI commands share: dataset options, consoles, progress bars."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from transferdet.data import formats
from transferdet.data.dataset import DetectionDataset
from transferdet.data.formats.base import ReadOptions
from transferdet.data.formats.csv_format import parse_column_mapping
from transferdet.data.split import ensure_split
from transferdet.errors import TransferdetError

out_console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


class InputFormat(str, Enum):
    auto = "auto"
    coco = "coco"
    voc = "voc"
    yolo = "yolo"
    csv = "csv"
    txt = "txt"


class OutputFormat(str, Enum):
    coco = "coco"
    voc = "voc"
    yolo = "yolo"
    csv = "csv"
    txt = "txt"


class BadBox(str, Enum):
    drop = "drop"
    clip = "clip"
    error = "error"
    keep = "keep"


class ImageMode(str, Enum):
    copy = "copy"
    link = "link"
    symlink = "symlink"


DEVICE_HELP = "cpu, cuda, cuda:1 ... (default: cuda if available)."
DeviceOption = Annotated[str | None, typer.Option(help=DEVICE_HELP)]
FormatOption = Annotated[
    InputFormat,
    typer.Option("--format", "-f", help="Dataset format; 'auto' detects it from the files."),
]
ImagesOption = Annotated[
    Path | None,
    typer.Option(help="Image folder, when the format's usual place does not hold the images."),
]
AnnotationsOption = Annotated[
    Path | None,
    typer.Option(help="Annotation folder (VOC XML files), when not in the usual place."),
]
CsvColumnsOption = Annotated[
    str | None,
    typer.Option(
        help="CSV column mapping ROLE=COLUMN,... with roles file, class, x1, y1, x2, y2, x, y, w, h, "
        "bbox, width, height, split (default: found from the header)."
    ),
]
ClassNameOption = Annotated[
    str, typer.Option(help="Class name for single-class CSVs without a class column (Global Wheat).")
]
BadBoxOption = Annotated[
    BadBox,
    typer.Option(
        "--on-bad-box",
        help="Zero-area, out-of-bounds or unknown-class boxes: drop them (one warning counts them), "
        "clip them to the image, stop with an error, or keep them as annotated.",
    ),
]
SplitSeedOption = Annotated[
    int, typer.Option("--split-seed", help="Seed of the 80/20 train/test split made for data without splits.")
]
OverwriteOption = Annotated[bool, typer.Option("--overwrite", help="Replace DST if it already exists.")]
PLUGIN_HELP = (
    "Import a module or .py file first (repeatable), e.g. one that registers a timm model, so that timm:NAME "
    "works here; before or after the command name alike."
)
PluginOption = Annotated[list[str], typer.Option("--plugin", help=PLUGIN_HELP)]


def use_plugins(plugins: list[str]) -> None:
    """Import the command's ``--plugin`` modules (each once per process)."""
    if plugins:
        from transferdet.plugins import load_plugins

        load_plugins(plugins)


def read_options(
    images: Path | None, annotations: Path | None, csv_columns: str | None, class_name: str
) -> ReadOptions:
    try:
        mapping = parse_column_mapping(csv_columns) if csv_columns else {}
    except ValueError as error:
        raise TransferdetError(f"--csv-columns: {error}") from None
    return ReadOptions(images=images, annotations=annotations, csv_columns=mapping, class_name=class_name)


def read_dataset(path: Path, format: InputFormat, options: ReadOptions, split_seed: int) -> DetectionDataset:
    """Read as annotated and give a dataset without splits its seeded split (said on stderr)."""
    dataset = ensure_split(formats.read(path, format.value, options), seed=split_seed)
    if dataset.split_origin.startswith("seeded"):
        sizes = ", ".join(f"{len(r)} {s}" for s, r in dataset.splits.items())
        err_console.print(f"{path}: no split in the data; made a {dataset.split_origin}: {sizes}")
    return dataset


def progress_bar(transient: bool = False, disable: bool = False) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=transient,
        disable=disable,
    )
