"""CSV with one row per box.

The columns are found from the header by name (case-insensitive), with presets for the common
exports, and can be mapped by hand (``--csv-columns file=NAME,class=NAME,...``). Roles:

- ``file`` (image path or id), ``class``, and the box as either ``x1,y1,x2,y2``
  (``xmin/ymin/xmax/ymax``, in any column order), ``x,y,w,h``, or ``bbox``, a JSON string
  ``"[x, y, w, h]"`` (Global Wheat's ``image_id,width,height,bbox``, a single class);
- optional ``width``/``height`` of the image (otherwise read from the image header) and ``split``.

A row whose box fields are all empty lists an image without objects. Roboflow's CSV export (split
folders with ``_annotations.csv``) reads as one split per folder. Written: ``annotations.csv``
(``filename,split,width,height,class,xmin,ymin,xmax,ymax``), images under ``images/<split>/``, and
``classes.txt``.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from transferdet.data.dataset import UNKNOWN_LABEL, DetectionDataset, ImageRecord
from transferdet.data.formats.base import (
    ReadOptions,
    WriteOptions,
    format_coordinate,
    natural_key,
    parse_float,
    read_class_list,
    write_class_list,
)
from transferdet.data.images import find_image, is_image_file, place_image
from transferdet.errors import DataError

NAME = "csv"
ANNOTATION_FILE = "annotations.csv"
ROBOFLOW_CSV = "_annotations.csv"
ROLE_ALIASES: dict[str, tuple[str, ...]] = {
    "file": ("filename", "file_name", "file", "image", "image_name", "image_path", "img", "path", "image_id"),
    "class": ("class", "class_name", "classname", "label", "category", "category_name", "name", "cell_type"),
    "x1": ("xmin", "x1", "x_min", "left"),
    "y1": ("ymin", "y1", "y_min", "top"),
    "x2": ("xmax", "x2", "x_max", "right"),
    "y2": ("ymax", "y2", "y_max", "bottom"),
    "x": ("x",),
    "y": ("y",),
    "w": ("w", "box_width", "bbox_width"),
    "h": ("h", "box_height", "bbox_height"),
    "bbox": ("bbox", "box"),
    "width": ("width", "image_width", "img_width"),
    "height": ("height", "image_height", "img_height"),
    "split": ("split", "subset"),
}
ROLES = tuple(ROLE_ALIASES)
BOX_STYLES = (("x1", "y1", "x2", "y2"), ("x", "y", "w", "h"), ("bbox",))


def _csv_files(path: Path) -> list[tuple[str | None, Path]]:
    if path.is_file():
        return [(None, path)] if path.suffix.lower() == ".csv" else []
    if not path.is_dir():
        return []
    roboflow = sorted(path.glob(f"*/{ROBOFLOW_CSV}"))
    if roboflow:
        return [(f.parent.name, f) for f in roboflow]
    for name in (ANNOTATION_FILE, ROBOFLOW_CSV):
        if (path / name).is_file():
            return [(None, path / name)]
    found = sorted(path.glob("*.csv"))
    return [(None, found[0])] if len(found) == 1 else []


def detect(path: Path) -> bool:
    return bool(_csv_files(path))


@dataclass(frozen=True)
class Columns:
    """Header index of each role found."""

    index: dict[str, int]
    box_style: tuple[str, ...]


def parse_column_mapping(text: str) -> dict[str, str]:
    """``"file=fname,class=label"`` -> ``{"file": "fname", "class": "label"}``."""
    mapping: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        role, sep, column = item.partition("=")
        role = role.strip()
        if not sep or role not in ROLES or not column.strip():
            raise ValueError(f"bad column mapping {item!r}: use ROLE=COLUMN with ROLE in {', '.join(ROLES)}")
        mapping[role] = column.strip()
    return mapping


def _columns(header: list[str], csv_path: Path, overrides: dict[str, str]) -> Columns:
    lowered = [h.strip().lower() for h in header]
    index: dict[str, int] = {}
    for role, column in overrides.items():
        if column.lower() not in lowered:
            raise DataError(csv_path, f"--csv-columns names column {column!r}, not in the header", "line 1")
        index[role] = lowered.index(column.lower())
    for role, aliases in ROLE_ALIASES.items():
        if role in index:
            continue
        taken = set(index.values())
        for alias in aliases:
            if alias in lowered and lowered.index(alias) not in taken:
                index[role] = lowered.index(alias)
                break
    if "file" not in index:
        raise DataError(
            csv_path, "no column for the image file (e.g. 'filename'); map one with --csv-columns file=NAME", "line 1"
        )
    for style in BOX_STYLES:
        if all(role in index for role in style):
            return Columns(index, style)
    raise DataError(
        csv_path,
        "no box columns (xmin,ymin,xmax,ymax | x,y,w,h | bbox); map them with --csv-columns x1=NAME,...",
        "line 1",
    )


def _image_dir(csv_path: Path, files: list[str], options: ReadOptions) -> Path:
    """The folder that holds the CSV's images: ``--images``, else the first of the CSV's folder, its
    subfolders and its parent's ``images/`` (``data/labels.csv`` beside ``images/``) that has one of
    the first rows' images (a missing image or two are counted later, not taken for a wrong folder).
    None has any of them: an error naming the places searched."""
    if options.images is not None:
        return options.images
    base = csv_path.parent
    candidates = [base, base / "images", base / "JPEGImages", base / "train"]
    candidates += [p for p in sorted(base.glob("*/*")) if p.is_dir()] + [
        p for p in sorted(base.glob("*")) if p.is_dir()
    ]
    candidates += [base.parent / "images", base.parent]
    if not files:
        return base / "images" if (base / "images").is_dir() else base
    for candidate in candidates:
        if any((candidate / f).is_file() or find_image(candidate, f) is not None for f in files):
            return candidate
    searched = ", ".join(dict.fromkeys(str(c) for c in candidates if c.is_dir()))
    shown = f"{files[0]!r}" if len(files) == 1 else f"{files[0]!r} (nor any of the first {len(files)})"
    raise DataError(csv_path, f"image {shown} of its first row is in none of: {searched} (give --images DIR)")


def _box(row: list[str], columns: Columns, path: Path, where: str) -> tuple[float, ...] | None:
    fields = [row[columns.index[role]].strip() for role in columns.box_style]
    if all(not f for f in fields):
        return None
    if columns.box_style == ("bbox",):
        try:
            values = json.loads(fields[0])
        except json.JSONDecodeError:
            raise DataError(path, f"bbox {fields[0]!r} is not a JSON list [x, y, w, h]", where) from None
        if not isinstance(values, list) or len(values) != 4:
            raise DataError(path, f"bbox must have 4 values [x, y, w, h], got {fields[0]!r}", where)
        x, y, w, h = (parse_float(v, path, where, "bbox value") for v in values)
        return (x, y, x + w, y + h)
    values = [parse_float(f, path, where, name) for f, name in zip(fields, columns.box_style, strict=True)]
    if columns.box_style == ("x", "y", "w", "h"):
        x, y, w, h = values
        return (x, y, x + w, y + h)
    return tuple(values)


@dataclass
class _Image:
    file: str
    split: str | None
    width: int = 0
    height: int = 0
    boxes: list = field(default_factory=list)
    names: list = field(default_factory=list)


def _read_rows(csv_path: Path, options: ReadOptions, default_split: str | None) -> list[_Image]:
    images: dict[tuple[str | None, str], _Image] = {}
    with open(csv_path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
            if not header:
                raise DataError(csv_path, "empty file, expected a header row")
            columns = _columns(header, csv_path, options.csv_columns)
            for row in reader:
                where = f"line {reader.line_num}"
                if not any(cell.strip() for cell in row):
                    continue
                if len(row) != len(header):
                    raise DataError(csv_path, f"expected {len(header)} fields, got {len(row)}", where)
                file_name = row[columns.index["file"]].strip()
                if not file_name:
                    raise DataError(csv_path, "empty image file name", where)
                split = row[columns.index["split"]].strip() if "split" in columns.index else default_split
                key = (split, file_name)
                image = images.get(key)
                if image is None:
                    image = images[key] = _Image(file_name, split)
                    for role in ("width", "height"):
                        if role in columns.index and row[columns.index[role]].strip():
                            value = parse_float(row[columns.index[role]], csv_path, where, role)
                            setattr(image, role, int(value))
                box = _box(row, columns, csv_path, where)
                if box is not None:
                    image.boxes.append(box)
                    name = row[columns.index["class"]].strip() if "class" in columns.index else options.class_name
                    image.names.append(name)
        except csv.Error as error:
            raise DataError(csv_path, f"not valid CSV ({error})", f"line {reader.line_num}") from None
        except UnicodeDecodeError:
            raise DataError(csv_path, "not a UTF-8 text file") from None
    return list(images.values())


def read(path: Path, options: ReadOptions) -> DetectionDataset:
    files = _csv_files(path)
    if not files:
        raise DataError(path, "no CSV annotation file found")
    declared = read_class_list(files[0][1].parent) or (read_class_list(path) if path.is_dir() else None)
    parsed: list[tuple[_Image, Path]] = []
    for split, csv_path in files:
        images = _read_rows(csv_path, options, split)
        image_dir = _image_dir(csv_path, [image.file for image in images[:20]], options)
        parsed.extend((image, image_dir) for image in images)
    classes = (
        list(declared)
        if declared is not None
        else sorted({n for image, _ in parsed for n in image.names}, key=natural_key)
    )
    label_of = {name: i for i, name in enumerate(classes)}
    has_split = any(image.split is not None for image, _ in parsed)
    splits: dict[str, list[ImageRecord]] = {}
    for image, image_dir in parsed:
        image_path = image_dir / image.file
        if not image_path.is_file() and not is_image_file(image_path):
            image_path = find_image(image_dir, image.file) or image_path
        record = ImageRecord(
            image_id=image.file,
            file_name=image.file if is_image_file(Path(image.file)) else image_path.name,
            path=image_path,
            width=image.width,
            height=image.height,
            boxes=np.array(image.boxes, dtype=np.float64).reshape(-1, 4),
            labels=np.array([label_of.get(n, UNKNOWN_LABEL) for n in image.names], dtype=np.int64),
        )
        splits.setdefault(image.split if has_split else "all", []).append(record)
    return DetectionDataset(
        classes=classes,
        splits=splits,
        source_format=NAME,
        root=path,
        read_problems={split: Counter() for split in splits},
        split_origin="file" if has_split else "none",
    )


def write(dataset: DetectionDataset, destination: Path, options: WriteOptions) -> None:
    destination.mkdir(parents=True, exist_ok=True)
    with open(destination / ANNOTATION_FILE, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["filename", "split", "width", "height", "class", "xmin", "ymin", "xmax", "ymax"])
        for split, records in dataset.splits.items():
            for record in records:
                relative = f"{split}/{Path(record.file_name).name}"
                place_image(record.path, destination / "images" / relative, options.image_mode)
                size = [str(int(record.width)), str(int(record.height))]
                if record.num_boxes == 0:
                    writer.writerow([relative, split, *size, "", "", "", "", ""])
                for box, label in zip(record.boxes, record.labels, strict=True):
                    name = dataset.classes[label] if label >= 0 else ""
                    writer.writerow([relative, split, *size, name, *(format_coordinate(v) for v in box)])
    write_class_list(destination, dataset.classes)
