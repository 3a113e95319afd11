"""Dataset formats: detection of a path's format, reading into a DetectionDataset, writing out.

Each format module has ``NAME``, ``detect(path)``, ``read(path, options)`` and
``write(dataset, destination, options)``.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType

from transferdet.atomic import atomic_directory
from transferdet.data.dataset import DetectionDataset
from transferdet.data.formats import coco, csv_format, txt, voc, yolo
from transferdet.data.formats.base import ReadOptions, WriteOptions
from transferdet.errors import DataError, TransferdetError

# Order matters for detection: a VOC folder may also hold a CSV export (bccd's test.csv).
FORMATS: dict[str, ModuleType] = {m.NAME: m for m in (coco, voc, yolo, txt, csv_format)}
FORMAT_NAMES = tuple(FORMATS)

__all__ = ["FORMATS", "FORMAT_NAMES", "ReadOptions", "WriteOptions", "detect_format", "read", "write"]


def _missing(path: Path) -> DataError:
    """The error for a path that cannot be opened: a link loop said as such."""
    if path.is_symlink():
        try:
            path.resolve(strict=True)
        except (RuntimeError, OSError) as error:
            if "loop" in str(error).lower() or getattr(error, "errno", None) == 40:
                return DataError(path, "a loop of symbolic links (it points, through links, back to itself)")
        return DataError(path, f"a symbolic link to {os.readlink(path)}, which does not exist")
    return DataError(path, "path does not exist")


def detect_format(path: Path) -> str:
    if not path.exists():
        raise _missing(path)
    for name, module in FORMATS.items():
        if module.detect(path):
            return name
    raise DataError(
        path,
        "no known dataset format here (COCO JSON, Pascal VOC XML, YOLO data.yaml, CSV, per-image txt); "
        "give --format and, if needed, --annotations/--images",
    )


def read(path: str | Path, format: str = "auto", options: ReadOptions | None = None) -> DetectionDataset:
    """Read a dataset as annotated (no split made, no bad-box policy applied)."""
    path = Path(path)
    if not path.exists():
        raise _missing(path)
    for folder in (options.images, options.annotations) if options else ():
        if folder is not None and not folder.is_dir():
            raise DataError(folder, "folder does not exist")
    name = detect_format(path) if format == "auto" else format
    if name not in FORMATS:
        raise TransferdetError(f"unknown format {name!r} (choose from auto, {', '.join(FORMATS)})")
    return FORMATS[name].read(path, options or ReadOptions())


def write(
    dataset: DetectionDataset,
    destination: str | Path,
    format: str,
    options: WriteOptions | None = None,
    overwrite: bool = False,
) -> None:
    """Write ``dataset`` in ``format`` to ``destination`` atomically: into a temporary folder beside
    it, renamed into place only when complete, so a failure leaves no partial output."""
    if format not in FORMATS:
        raise TransferdetError(f"unknown format {format!r} (choose from {', '.join(FORMATS)})")
    with atomic_directory(Path(destination), overwrite) as staging:
        FORMATS[format].write(dataset, staging, options or WriteOptions())
