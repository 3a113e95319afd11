"""COCO JSON (Lin et al., "Microsoft COCO: Common Objects in Context", 2014).

Layouts read:
- standard: ``annotations/instances_<split>.json`` with images in ``<split>/``, ``images/<split>/``
  or ``images/``;
- Roboflow export: split folders ``train/ valid/ test/``, each with ``_annotations.coco.json``
  beside its images;
- a JSON file given directly (images beside it, or ``--images DIR``).
Written: the standard layout, category ids from 1, masks as the records hold them.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from transferdet.data.dataset import UNKNOWN_LABEL, DetectionDataset, ImageRecord
from transferdet.data.formats.base import ReadOptions, WriteOptions, load_json, parse_float
from transferdet.data.images import place_image
from transferdet.data.split import names_a_split
from transferdet.errors import DataError

NAME = "coco"
ROBOFLOW_JSON = "_annotations.coco.json"


def _split_files(path: Path) -> list[tuple[str, Path]]:
    """``(split, json path)`` pairs for a JSON file or a folder in one of the known layouts."""
    if path.is_file():
        return [(_split_name(path), path)]
    annotations = path / "annotations"
    if annotations.is_dir():
        instances = sorted(annotations.glob("instances_*.json"))
        files = instances or sorted(annotations.glob("*.json"))
        if files:
            return [(_split_name(f), f) for f in files]
    roboflow = sorted(path.glob(f"*/{ROBOFLOW_JSON}"))
    if roboflow:
        return [(f.parent.name, f) for f in roboflow]
    for name in (ROBOFLOW_JSON, "annotations.json", "instances.json"):
        if (path / name).is_file():
            return [(_split_name(path / name), path / name)]
    return []


def _split_name(json_path: Path) -> str:
    if json_path.name == ROBOFLOW_JSON:
        return json_path.parent.name
    stem = json_path.stem
    return stem[len("instances_") :] if stem.startswith("instances_") else stem


def detect(path: Path) -> bool:
    if path.is_file():
        return path.suffix.lower() == ".json"
    return bool(_split_files(path))


def _image_dir(json_path: Path, split: str, first_file: str | None, options: ReadOptions) -> Path:
    if options.images is not None:
        return options.images
    base = json_path.parent
    root = base.parent if base.name == "annotations" else base
    candidates = [base, root / split, root / "images" / split, root / "images", root]
    if first_file is not None:
        for candidate in candidates:
            if (candidate / first_file).is_file():
                return candidate
    existing = [c for c in candidates[1:] if c.is_dir()] if base.name == "annotations" else []
    return existing[0] if existing else candidates[0]


def _require_list(data: dict, key: str, path: Path) -> list:
    if key not in data:
        raise DataError(path, f"no '{key}' list (not a COCO detection file?)")
    if not isinstance(data[key], list):
        raise DataError(path, f"'{key}' is not a list")
    return data[key]


def _category_labels(json_path: Path, categories: list, classes: list[str], problems: Counter) -> dict[Any, int]:
    """Category id -> label; extends ``classes`` with names not seen before."""
    category_label: dict[Any, int] = {}
    for index, category in enumerate(categories):
        where = f"categories[{index}]"
        if not isinstance(category, dict) or "id" not in category or "name" not in category:
            raise DataError(json_path, "a category needs 'id' and 'name'", where)
        if category["id"] in category_label:
            problems["duplicate_id"] += 1
            continue
        name = str(category["name"])
        if name not in classes:
            classes.append(name)
        category_label[category["id"]] = classes.index(name)
    return category_label


def _image_entries(
    json_path: Path, split: str, images: list, options: ReadOptions, problems: Counter
) -> tuple[dict[Any, dict[str, Any]], Path | None]:
    """Image id -> its entry (boxes, labels and masks to be filled), in file order, and the image folder."""
    image_dir: Path | None = None
    by_id: dict[Any, dict[str, Any]] = {}
    for index, image in enumerate(images):
        where = f"images[{index}]"
        if not isinstance(image, dict) or "id" not in image or "file_name" not in image:
            raise DataError(json_path, "an image needs 'id' and 'file_name'", where)
        if image["id"] in by_id:
            problems["duplicate_id"] += 1
            continue
        if image_dir is None:
            image_dir = _image_dir(json_path, split, str(image["file_name"]), options)
        width = int(parse_float(image.get("width", 0) or 0, json_path, where, "width"))
        height = int(parse_float(image.get("height", 0) or 0, json_path, where, "height"))
        stated = "width" in image or "height" in image
        by_id[image["id"]] = {
            "file_name": str(image["file_name"]),
            "width": width,
            "height": height,
            # a size stated as zero or negative is wrong, not absent: counted once the file is probed
            "declared": (width, height) if stated and (width <= 0 or height <= 0) else None,
            "boxes": [],
            "labels": [],
            "masks": [],
            "crowd": [],
            "difficult": [],
        }
    return by_id, image_dir


def _add_annotations(
    json_path: Path, annotations: list, by_id: dict, category_label: dict[Any, int], problems: Counter
) -> None:
    seen_annotation_ids: set[Any] = set()
    for index, annotation in enumerate(annotations):
        where = f"annotations[{index}]"
        if not isinstance(annotation, dict):
            raise DataError(json_path, "an annotation is not an object", where)
        if "id" in annotation:
            where = f"annotation id {annotation['id']}"
            if annotation["id"] in seen_annotation_ids:
                problems["duplicate_id"] += 1
            seen_annotation_ids.add(annotation["id"])
        for key in ("image_id", "bbox", "category_id"):
            if key not in annotation:
                raise DataError(json_path, f"no '{key}'", where)
        target = by_id.get(annotation["image_id"])
        if target is None:
            raise DataError(json_path, f"points to unknown image_id {annotation['image_id']!r}", where)
        bbox = annotation["bbox"]
        if not isinstance(bbox, list) or len(bbox) != 4:
            count = len(bbox) if isinstance(bbox, list) else "not a list"
            raise DataError(json_path, f"bbox must be [x, y, width, height], got {count} values", where)
        x, y, w, h = (parse_float(v, json_path, where, "bbox value") for v in bbox)
        target["boxes"].append((x, y, x + w, y + h))
        target["labels"].append(category_label.get(annotation["category_id"], UNKNOWN_LABEL))
        segmentation = annotation.get("segmentation")
        target["masks"].append(segmentation if segmentation else None)
        # a VOC difficult box is written with iscrowd 1 (for COCO's AP) and difficult 1: it stays difficult
        difficult = bool(annotation.get("difficult", 0))
        target["difficult"].append(difficult)
        target["crowd"].append(bool(annotation.get("iscrowd", 0)) and not difficult)


def _record(image_id: Any, item: dict[str, Any], base: Path) -> ImageRecord:
    masks = item["masks"] if any(m is not None for m in item["masks"]) else None
    return ImageRecord(
        image_id=image_id,
        file_name=item["file_name"],
        path=base / item["file_name"],
        width=item["width"],
        height=item["height"],
        boxes=np.array(item["boxes"], dtype=np.float64).reshape(-1, 4),
        labels=np.array(item["labels"], dtype=np.int64),
        masks=masks,
        declared_size=item["declared"],
        difficult=np.array(item["difficult"], dtype=bool),
        crowd=np.array(item["crowd"], dtype=bool),
    )


def _parse_split(
    json_path: Path, split: str, options: ReadOptions, classes: list[str]
) -> tuple[list[ImageRecord], Counter]:
    """Records of one COCO file; extends ``classes`` with names not seen before."""
    data = load_json(json_path)
    if not isinstance(data, dict):
        raise DataError(json_path, "top level is not a JSON object (not a COCO detection file?)")
    images = _require_list(data, "images", json_path)
    annotations = _require_list(data, "annotations", json_path)
    categories = _require_list(data, "categories", json_path)
    problems: Counter = Counter()
    category_label = _category_labels(json_path, categories, classes, problems)
    by_id, image_dir = _image_entries(json_path, split, images, options, problems)
    _add_annotations(json_path, annotations, by_id, category_label, problems)
    base = image_dir or json_path.parent
    return [_record(image_id, item, base) for image_id, item in by_id.items()], problems


def read(path: Path, options: ReadOptions) -> DetectionDataset:
    files = _split_files(path)
    if not files:
        raise DataError(
            path,
            "no COCO JSON found (expected annotations/instances_<split>.json, "
            f"<split>/{ROBOFLOW_JSON} or a .json file)",
        )
    classes: list[str] = []
    splits: dict[str, list[ImageRecord]] = {}
    problems: dict[str, Counter] = {}
    for split, json_path in files:
        records, split_problems = _parse_split(json_path, split, options, classes)
        splits[split] = records
        problems[split] = split_problems
    # a folder with one file whose name is no split (annotations.json): the data has no split yet
    # (a JSON file named on the command line keeps its name as its split)
    unsplit = path.is_dir() and len(files) == 1 and not names_a_split(files[0][0])
    if unsplit:
        splits, problems = {"all": splits[files[0][0]]}, {"all": problems[files[0][0]]}
    return DetectionDataset(
        classes=classes,
        splits=splits,
        source_format=NAME,
        root=path,
        read_problems=problems,
        split_origin="none" if unsplit else "file",
    )


def _coco_box(box: np.ndarray) -> list[float]:
    x1, y1, x2, y2 = (float(v) for v in box)
    return [x1, y1, x2 - x1, y2 - y1]


def to_coco_dict(records: list[ImageRecord], classes: list[str]) -> dict[str, Any]:
    """A COCO detection dict: category ids 1..C in class order, image ids 1..N, annotation ids 1..M.

    Also the ground truth our evaluation hands to COCO's AP code: crowd boxes are ``iscrowd`` 1,
    and so are VOC's difficult ones (COCO's way of ignoring a box), which also keep ``difficult`` 1.
    """
    images, annotations = [], []
    for image_index, record in enumerate(records, start=1):
        images.append(
            {
                "id": image_index,
                "file_name": record.file_name,
                "width": int(record.width),
                "height": int(record.height),
            }
        )
        difficult = record.flags("difficult")
        for k, (box, label, ignored) in enumerate(zip(record.boxes, record.labels, record.ignored, strict=True)):
            x, y, w, h = _coco_box(box)
            annotation: dict[str, Any] = {
                "id": len(annotations) + 1,
                "image_id": image_index,
                "category_id": int(label) + 1 if label >= 0 else 0,
                "bbox": [x, y, w, h],
                "area": max(w, 0.0) * max(h, 0.0),
                "iscrowd": int(ignored),
                "segmentation": [],
            }
            if difficult[k]:
                annotation["difficult"] = 1
            mask = record.masks[k] if record.masks is not None else None
            if mask is not None:
                annotation["segmentation"] = mask
            annotations.append(annotation)
    categories = [{"id": i + 1, "name": name, "supercategory": "none"} for i, name in enumerate(classes)]
    return {"images": images, "annotations": annotations, "categories": categories}


def write(dataset: DetectionDataset, destination: Path, options: WriteOptions) -> None:
    (destination / "annotations").mkdir(parents=True, exist_ok=True)
    for split, records in dataset.splits.items():
        placed = []
        for record in records:
            file_name = _safe_relative(record.file_name)
            place_image(record.path, destination / split / file_name, options.image_mode)
            placed.append(_with_file_name(record, file_name))
        content = to_coco_dict(placed, dataset.classes)
        target = destination / "annotations" / f"instances_{split}.json"
        target.write_text(json.dumps(content), encoding="utf-8")


def _safe_relative(file_name: str) -> str:
    """A file name that stays inside the output folder."""
    parts = [p for p in Path(file_name).parts if p not in ("", ".", "..", os.sep) and not Path(p).anchor]
    return str(Path(*parts)) if parts else "image"


def _with_file_name(record: ImageRecord, file_name: str) -> ImageRecord:
    return replace(record, file_name=file_name)
