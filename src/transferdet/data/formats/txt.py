"""Per-image txt labels, the layout of MNIST-like detection generators.

``[<split>/]images/NAME.png`` with ``[<split>/]labels/NAME.txt``: a header line
(``label,xmin,ymin,xmax,ymax``), then one ``label,x1,y1,x2,y2`` row per box in absolute pixels,
the label being the class name. A ``classes.txt`` at the root fixes the class order.
"""

from __future__ import annotations

from collections import Counter
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
    read_text_file,
    unique_stems,
    write_class_list,
)
from transferdet.data.images import is_image_file, place_image, probe
from transferdet.errors import DataError

NAME = "txt"
HEADER = "label,xmin,ymin,xmax,ymax"


def _is_txt_folder(folder: Path) -> bool:
    if not ((folder / "images").is_dir() and (folder / "labels").is_dir()):
        return False
    label_file = next((folder / "labels").glob("*.txt"), None)
    if label_file is None:
        return False
    first = next((line for line in label_file.read_text(errors="replace").splitlines() if line.strip()), "")
    return "," in first


def _split_folders(path: Path) -> dict[str, Path] | None:
    if not path.is_dir():
        return None
    if _is_txt_folder(path):
        return {"all": path}
    found = {child.name: child for child in sorted(path.iterdir()) if child.is_dir() and _is_txt_folder(child)}
    return found or None


def detect(path: Path) -> bool:
    return _split_folders(path) is not None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_label_file(path: Path) -> tuple[list[str], list[tuple[float, ...]]]:
    names, boxes = [], []
    try:
        lines = read_text_file(path).splitlines()
    except UnicodeDecodeError:
        raise DataError(path, "not a UTF-8 text file") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        if number == 1 and not (len(fields) == 5 and all(_is_number(f) for f in fields[1:])):
            continue  # the header line
        where = f"line {number}"
        if len(fields) != 5:
            raise DataError(path, f"expected 5 values label,x1,y1,x2,y2, got {len(fields)}", where)
        names.append(fields[0])
        boxes.append(
            tuple(parse_float(v, path, where, n) for v, n in zip(fields[1:], ("x1", "y1", "x2", "y2"), strict=True))
        )
    return names, boxes


def read(path: Path, options: ReadOptions) -> DetectionDataset:
    folders = _split_folders(path)
    if folders is None:
        raise DataError(path, "no images/ + labels/ folders with comma-separated label files")
    parsed: dict[str, list[tuple[Path, list[str], list]]] = {}
    for split, folder in folders.items():
        items = []
        images = sorted(
            (p for p in (folder / "images").iterdir() if is_image_file(p)), key=lambda p: natural_key(p.name)
        )
        for image in images:
            label_file = folder / "labels" / f"{image.stem}.txt"
            names, boxes = _read_label_file(label_file) if label_file.is_file() else ([], [])
            items.append((image, names, boxes))
        parsed[split] = items
    declared = read_class_list(path)
    classes = (
        list(declared)
        if declared is not None
        else sorted({n for items in parsed.values() for _, names, _ in items for n in names}, key=natural_key)
    )
    label_of = {name: i for i, name in enumerate(classes)}
    splits = {
        split: [
            probe(
                ImageRecord(
                    image_id=image.stem,
                    file_name=image.name,
                    path=image,
                    width=0,
                    height=0,
                    boxes=np.array(boxes, dtype=np.float64).reshape(-1, 4),
                    labels=np.array([label_of.get(n, UNKNOWN_LABEL) for n in names], dtype=np.int64),
                )
            )
            for image, names, boxes in items
        ]
        for split, items in parsed.items()
    }
    origin = "none" if list(folders) == ["all"] else "file"
    return DetectionDataset(classes, splits, NAME, path, {s: Counter() for s in splits}, origin)


def write(dataset: DetectionDataset, destination: Path, options: WriteOptions) -> None:
    stems = unique_stems((s, r.file_name) for s, rs in dataset.splits.items() for r in rs)
    for split, records in dataset.splits.items():
        (destination / split / "labels").mkdir(parents=True, exist_ok=True)
        (destination / split / "images").mkdir(parents=True, exist_ok=True)
        for record in records:
            stem = stems[(split, record.file_name)]
            place_image(record.path, destination / split / "images" / f"{stem}{record.path.suffix}", options.image_mode)
            rows = [HEADER] + [
                ",".join([dataset.classes[label] if label >= 0 else "", *(format_coordinate(v) for v in box)])
                for box, label in zip(record.boxes, record.labels, strict=True)
            ]
            (destination / split / "labels" / f"{stem}.txt").write_text("\n".join(rows) + "\n", encoding="utf-8")
    write_class_list(destination, dataset.classes)
