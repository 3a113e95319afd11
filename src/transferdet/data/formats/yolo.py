"""YOLO txt labels with a ``data.yaml`` (the Ultralytics/Roboflow layout).

Each image ``.../images/NAME.jpg`` has ``.../labels/NAME.txt`` with one ``class cx cy w h`` line per
box (normalised to the image size), or a polygon ``class x1 y1 x2 y2 ...`` (YOLO segmentation),
whose bounds become the box and whose outline the mask. A missing label file means an image
without objects. ``data.yaml`` gives ``names`` (list or ``{id: name}``), an optional ``path`` and
split entries (folder, list file or list of those). Roboflow exports write split paths such as
``../train/images`` that do not resolve from ``data.yaml``: then the split folders next to
``data.yaml`` are used, with a warning.
"""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import yaml

from transferdet.data.dataset import UNKNOWN_LABEL, DetectionDataset, ImageRecord
from transferdet.data.formats.base import (
    ReadOptions,
    WriteOptions,
    load_yaml,
    natural_key,
    parse_float,
    read_class_list,
    read_text_file,
    unique_stems,
)
from transferdet.data.images import is_image_file, place_image, probe
from transferdet.data.validation import DataWarning
from transferdet.errors import DataError

NAME = "yolo"
SPLIT_KEYS = ("train", "val", "test")
YAML_NAMES = ("data.yaml", "data.yml", "dataset.yaml")


def _find_yaml(path: Path) -> Path | None:
    if path.is_file():
        return path if path.suffix.lower() in (".yaml", ".yml") else None
    for name in YAML_NAMES:
        if (path / name).is_file():
            return path / name
    return None


def _label_file_is_yolo(label_file: Path) -> bool:
    first = next((line for line in label_file.read_text(errors="replace").splitlines() if line.strip()), "")
    return not first or "," not in first


def _bare_folder(path: Path) -> bool:
    """``images/`` and ``labels/`` with whitespace-separated label files and no data.yaml."""
    if not (path.is_dir() and (path / "images").is_dir() and (path / "labels").is_dir()):
        return False
    label_file = next((path / "labels").glob("*.txt"), None)
    return label_file is None or _label_file_is_yolo(label_file)


def detect(path: Path) -> bool:
    return _find_yaml(path) is not None or _bare_folder(path)


def _names(config: dict, yaml_path: Path) -> list[str]:
    names = config.get("names")
    if isinstance(names, list):
        return [str(n) for n in names]
    if isinstance(names, dict):
        try:
            ids = sorted(int(k) for k in names)
        except (TypeError, ValueError):
            raise DataError(yaml_path, "'names' keys must be class ids (integers)") from None
        if ids != list(range(len(ids))):
            raise DataError(yaml_path, "'names' ids must be 0..N-1")
        return [str(names[k] if k in names else names[str(k)]) for k in ids]
    raise DataError(yaml_path, "no 'names' list or mapping")


def _images_of(source: Path) -> list[Path]:
    if source.is_dir():
        return sorted((p for p in source.rglob("*") if is_image_file(p)), key=lambda p: natural_key(str(p)))
    lines = read_text_file(source).splitlines()
    return [(source.parent / line.strip()).resolve() for line in lines if line.strip()]


def _resolve_split(entry: str, base: Path, yaml_path: Path, key: str) -> Path:
    candidate = (base / entry) if not Path(entry).is_absolute() else Path(entry)
    if candidate.exists():
        return candidate
    parts = Path(entry).parts
    fallbacks = [
        yaml_path.parent / Path(*parts[-2:]) if len(parts) >= 2 else None,
        yaml_path.parent / key / "images",
        yaml_path.parent / key,
    ]
    for fallback in fallbacks:
        if fallback is not None and fallback.exists():
            relative = fallback.relative_to(yaml_path.parent)
            warnings.warn(
                f"{yaml_path}: '{key}: {entry}' does not resolve; using {relative} next to data.yaml",
                DataWarning,
                stacklevel=3,
            )
            return fallback
    raise DataError(yaml_path, f"split path {entry!r} does not exist", f"'{key}'")


def _label_path(image: Path) -> Path:
    parts = list(image.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            return Path(*parts).with_suffix(".txt")
    return image.with_suffix(".txt")


def _read_labels(label_file: Path, record: ImageRecord, num_classes: int) -> None:
    if not label_file.is_file():
        return
    boxes, labels, polygons = [], [], []
    for number, line in enumerate(read_text_file(label_file).splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"line {number}"
        if len(fields) != 5 and (len(fields) < 7 or len(fields) % 2 == 0):
            raise DataError(label_file, f"expected 5 values (class cx cy w h) or a polygon, got {len(fields)}", where)
        try:
            label = int(fields[0])
        except ValueError:
            raise DataError(label_file, f"class {fields[0]!r} is not an integer id", where) from None
        values = np.array([parse_float(v, label_file, where, "coordinate") for v in fields[1:]])
        scale_x, scale_y = (record.width, record.height) if record.width > 0 else (np.nan, np.nan)
        if len(fields) == 5:
            cx, cy, w, h = values
            box = ((cx - w / 2) * scale_x, (cy - h / 2) * scale_y, (cx + w / 2) * scale_x, (cy + h / 2) * scale_y)
            polygons.append(None)
        else:
            xs, ys = values[0::2] * scale_x, values[1::2] * scale_y
            box = (xs.min(), ys.min(), xs.max(), ys.max())
            polygons.append([[float(v) for pair in zip(xs, ys, strict=True) for v in pair]])
        boxes.append(box)
        labels.append(label if 0 <= label < num_classes else UNKNOWN_LABEL)
    record.boxes = np.array(boxes, dtype=np.float64).reshape(-1, 4)
    record.labels = np.array(labels, dtype=np.int64)
    record.masks = polygons if any(p is not None for p in polygons) else None


def _records(images: list[Path], root: Path, num_classes: int) -> list[ImageRecord]:
    records = []
    for image in images:
        try:
            file_name = str(image.relative_to(root))
        except ValueError:
            file_name = image.name
        record = probe(ImageRecord(image_id=image.stem, file_name=file_name, path=image, width=0, height=0))
        _read_labels(_label_path(image), record, num_classes)
        records.append(record)
    return records


def _unlisted_test(yaml_path: Path, listed: set[Path]) -> Path | None:
    """A ``test/images`` + ``test/labels`` folder beside a data.yaml that names no test split
    (Roboflow exports do this), unless another split already reads it; said in a warning."""
    folder = yaml_path.parent / "test"
    if not ((folder / "images").is_dir() and (folder / "labels").is_dir()) or (folder / "images").resolve() in listed:
        return None
    warnings.warn(
        DataWarning(
            f"{yaml_path}: no 'test' key, but {folder}/images and labels/ stand beside it; read as the test split"
        ),
        stacklevel=2,
    )
    return folder / "images"


def read(path: Path, options: ReadOptions) -> DetectionDataset:
    yaml_path = _find_yaml(path)
    if yaml_path is None:
        if not _bare_folder(path):
            raise DataError(path, "no data.yaml and no images/ + labels/ folders (not a YOLO dataset?)")
        classes = read_class_list(path)
        images = _images_of(path / "images")
        if classes is None:
            ids = [
                int(line.split()[0])
                for img in images
                if _label_path(img).is_file()
                for line in read_text_file(_label_path(img)).splitlines()
                if line.split() and line.split()[0].isdigit()
            ]
            classes = [str(i) for i in range(max(ids, default=-1) + 1)]
        records = _records(images, path / "images", len(classes))
        return DetectionDataset(classes, {"all": records}, NAME, path, split_origin="none")

    config = load_yaml(yaml_path)
    if not isinstance(config, dict):
        raise DataError(yaml_path, "top level is not a mapping (not a YOLO data.yaml?)")
    classes = _names(config, yaml_path)
    base = yaml_path.parent
    if config.get("path"):
        declared = Path(str(config["path"]))
        declared = declared if declared.is_absolute() else yaml_path.parent / declared
        base = declared if declared.exists() else yaml_path.parent
    keys = [k for k in SPLIT_KEYS if config.get(k)]
    splits: dict[str, list[ImageRecord]] = {}
    sources: set[Path] = set()
    for key in keys:
        entries = config[key] if isinstance(config[key], list) else [config[key]]
        images: list[Path] = []
        for entry in entries:
            source = _resolve_split(str(entry), base, yaml_path, key)
            sources.add(source.resolve())
            images.extend(_images_of(source))
        splits[key] = _records(images, yaml_path.parent, len(classes))
    unlisted = None if "test" in splits else _unlisted_test(yaml_path, sources)
    if unlisted is not None:
        splits["test"] = _records(_images_of(unlisted), yaml_path.parent, len(classes))
    if not splits:
        raise DataError(yaml_path, "no split paths (train/val/test)")
    problems = {split: Counter() for split in splits}
    return DetectionDataset(classes, splits, NAME, yaml_path.parent, read_problems=problems)


def _yolo_line(box: np.ndarray, label: int, width: int, height: int) -> str:
    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) / 2 / width, (y1 + y2) / 2 / height
    w, h = (x2 - x1) / width, (y2 - y1) / height
    return f"{label} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n"


def write(dataset: DetectionDataset, destination: Path, options: WriteOptions) -> None:
    stems = unique_stems((s, r.file_name) for s, rs in dataset.splits.items() for r in rs)
    config: dict = {}
    for split, records in dataset.splits.items():
        image_dir = destination / split / "images"
        label_dir = destination / split / "labels"
        image_dir.mkdir(parents=True, exist_ok=True)
        label_dir.mkdir(parents=True, exist_ok=True)
        for record in records:
            stem = stems[(split, record.file_name)]
            place_image(record.path, image_dir / f"{stem}{record.path.suffix or '.jpg'}", options.image_mode)
            probe(record)
            lines = [
                _yolo_line(box, int(label), record.width, record.height)
                for box, label in zip(record.boxes, record.labels, strict=True)
                if label >= 0
            ]
            (label_dir / f"{stem}.txt").write_text("".join(lines), encoding="utf-8")
        key = "val" if split in ("valid", "validation") else split
        config[key] = f"{split}/images"
    config["nc"] = len(dataset.classes)
    config["names"] = list(dataset.classes)
    (destination / "data.yaml").write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
