"""Pascal VOC XML (Everingham et al., "The PASCAL Visual Object Classes Challenge", IJCV 2010).

Layouts read:
- standard: ``Annotations/*.xml``, ``JPEGImages/``, splits in ``ImageSets/Main/<split>.txt``
  (found in the folder given or one level below it, e.g. ``bccd/BCCD``);
- plain: a folder of XML files (``annotations/``, ``annots/``, ``Annotations/`` or ``xml/``) beside
  an ``images/`` folder, or XML files beside their images;
- any two folders given as ``--annotations DIR --images DIR``.
``trainval`` is dropped when it is exactly ``train`` + ``val`` so that splits do not overlap.
Coordinates are taken as written (no 1-based shift), so conversions round-trip exactly. An optional
``classes.txt`` fixes the class order and declares classes without boxes.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass
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
from transferdet.data.images import find_image, is_image_file, place_image
from transferdet.errors import DataError

NAME = "voc"
ANNOTATION_DIRS = ("Annotations", "annotations", "annots", "xml")
IMAGE_DIRS = ("JPEGImages", "images", "Images")


@dataclass(frozen=True)
class Layout:
    annotations: Path
    images: Path
    image_sets: Path | None
    root: Path


def _has_xml(folder: Path) -> bool:
    return folder.is_dir() and next(folder.glob("*.xml"), None) is not None


def _layout_in(folder: Path) -> Layout | None:
    for annotation_name in ANNOTATION_DIRS:
        annotations = folder / annotation_name
        if not _has_xml(annotations):
            continue
        images = next((folder / n for n in IMAGE_DIRS if (folder / n).is_dir()), annotations)
        sets = folder / "ImageSets" / "Main"
        return Layout(annotations, images, sets if sets.is_dir() else None, folder)
    return None


def find_layout(path: Path, options: ReadOptions) -> Layout | None:
    if options.annotations is not None:
        annotations = options.annotations
        images = options.images or annotations
        return Layout(annotations, images, None, annotations.parent)
    if not path.is_dir():
        return None
    layout = _layout_in(path)
    if layout is None:
        for child in sorted(p for p in path.iterdir() if p.is_dir()):
            layout = _layout_in(child)
            if layout is not None:
                break
    if layout is None and _has_xml(path):
        layout = Layout(path, path, None, path)
    if layout is not None and options.images is not None:
        layout = Layout(layout.annotations, options.images, layout.image_sets, layout.root)
    return layout


def detect(path: Path) -> bool:
    return find_layout(path, ReadOptions()) is not None


def _text(element: ET.Element, tag: str) -> str | None:
    child = element.find(tag)
    return child.text.strip() if child is not None and child.text is not None else None


@dataclass
class _Parsed:
    file_name: str | None
    width: int
    height: int
    names: list[str]
    boxes: list[tuple[float, float, float, float]]
    difficult: list[bool]


def _parse_xml(path: Path) -> _Parsed:
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as error:
        line, column = error.position
        raise DataError(path, "not valid XML", f"line {line} column {column + 1}") from None
    if root.tag != "annotation":
        raise DataError(path, f"root element is <{root.tag}>, expected <annotation>")
    size = root.find("size")
    width = height = 0
    if size is not None:
        width = int(parse_float(_text(size, "width") or 0, path, "<size>", "width"))
        height = int(parse_float(_text(size, "height") or 0, path, "<size>", "height"))
    names, boxes, difficult = [], [], []
    for index, obj in enumerate(root.iter("object"), start=1):
        where = f"<object> {index}"
        name = _text(obj, "name")
        if not name:
            raise DataError(path, "has no <name>", where)
        box = obj.find("bndbox")
        if box is None:
            raise DataError(path, "has no <bndbox>", where)
        values = []
        for tag in ("xmin", "ymin", "xmax", "ymax"):
            value = _text(box, tag)
            if value is None:
                raise DataError(path, f"<bndbox> has no <{tag}>", where)
            values.append(parse_float(value, path, where, f"<{tag}>"))
        names.append(name)
        boxes.append(tuple(values))
        difficult.append(_text(obj, "difficult") == "1")
    return _Parsed(_text(root, "filename"), width, height, names, boxes, difficult)


def _split_ids(layout: Layout) -> dict[str, list[tuple[str, int]]] | None:
    """``split -> [(image id, line number)]`` from ImageSets/Main, or None without split files."""
    if layout.image_sets is None:
        return None
    splits: dict[str, list[tuple[str, int]]] = {}
    for split_file in sorted(layout.image_sets.glob("*.txt")):
        if "_" in split_file.stem:
            continue  # per-class files such as aeroplane_train.txt
        entries = []
        for number, line in enumerate(read_text_file(split_file).splitlines(), start=1):
            if line.strip():
                entries.append((line.split()[0], number))
        splits[split_file.stem] = entries
    if not splits:
        return None
    if {"train", "val", "trainval"} <= set(splits):
        union = {i for i, _ in splits["train"]} | {i for i, _ in splits["val"]}
        if union == {i for i, _ in splits["trainval"]}:
            del splits["trainval"]
    return splits


def _parse_all(layout: Layout, split_ids: dict[str, list[tuple[str, int]]]) -> dict[str, _Parsed]:
    """Every listed image's XML, parsed once; a listed image without one is an error naming the list."""
    parsed: dict[str, _Parsed] = {}
    for split, entries in split_ids.items():
        for image_id, number in entries:
            xml_path = layout.annotations / f"{image_id}.xml"
            if image_id not in parsed:
                if not xml_path.is_file():
                    set_file = (layout.image_sets or layout.annotations) / f"{split}.txt"
                    raise DataError(set_file, f"no annotation file {xml_path.name}", f"line {number}")
                parsed[image_id] = _parse_xml(xml_path)
    return parsed


def _record(layout: Layout, image_id: str, item: _Parsed, label_of: dict[str, int]) -> ImageRecord:
    image_path = layout.images / item.file_name if item.file_name else None
    if image_path is None or not image_path.is_file():
        image_path = find_image(layout.images, image_id) or image_path or (layout.images / f"{image_id}.jpg")
    return ImageRecord(
        image_id=image_id,
        file_name=image_path.name,
        path=image_path,
        width=item.width,
        height=item.height,
        boxes=np.array(item.boxes, dtype=np.float64).reshape(-1, 4),
        labels=np.array([label_of.get(n, UNKNOWN_LABEL) for n in item.names], dtype=np.int64),
        difficult=np.array(item.difficult, dtype=bool),
    )


def read(path: Path, options: ReadOptions) -> DetectionDataset:
    layout = find_layout(path, options)
    if layout is None:
        raise DataError(path, "no Pascal VOC annotations found (expected Annotations/*.xml)")
    if not layout.annotations.is_dir():
        raise DataError(layout.annotations, "annotation folder does not exist")
    declared = read_class_list(layout.root)
    split_ids = _split_ids(layout)
    origin = "file"
    if split_ids is None:
        all_ids = sorted((p.stem for p in layout.annotations.glob("*.xml")), key=natural_key)
        split_ids = {"all": [(i, 0) for i in all_ids]}
        origin = "none"
    parsed = _parse_all(layout, split_ids)
    names = {n for p in parsed.values() for n in p.names}
    classes = list(declared) if declared is not None else sorted(names, key=natural_key)
    label_of = {name: i for i, name in enumerate(classes)}
    splits: dict[str, list[ImageRecord]] = {}
    problems: dict[str, Counter] = {}
    for split, entries in split_ids.items():
        problems[split], seen, splits[split] = Counter(), set(), []
        for image_id, _ in entries:
            if image_id in seen:
                problems[split]["duplicate_id"] += 1
                continue
            seen.add(image_id)
            splits[split].append(_record(layout, image_id, parsed[image_id], label_of))
    return DetectionDataset(
        classes=classes,
        splits=splits,
        source_format=NAME,
        root=layout.root,
        read_problems=problems,
        split_origin=origin,
    )


def _annotation_xml(record: ImageRecord, file_name: str, classes: list[str]) -> ET.ElementTree:
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = "JPEGImages"
    ET.SubElement(root, "filename").text = file_name
    size = ET.SubElement(root, "size")
    ET.SubElement(size, "width").text = str(int(record.width))
    ET.SubElement(size, "height").text = str(int(record.height))
    ET.SubElement(size, "depth").text = "3"
    ET.SubElement(root, "segmented").text = "0"
    # VOC has no crowd regions: a COCO crowd box is kept as difficult (evaluation ignores both)
    for box, label, ignored in zip(record.boxes, record.labels, record.ignored, strict=True):
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = classes[label] if label >= 0 else "__unknown__"
        ET.SubElement(obj, "pose").text = "Unspecified"
        ET.SubElement(obj, "truncated").text = "0"
        ET.SubElement(obj, "difficult").text = "1" if ignored else "0"
        bndbox = ET.SubElement(obj, "bndbox")
        for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), box, strict=True):
            ET.SubElement(bndbox, tag).text = format_coordinate(value)
    tree = ET.ElementTree(root)
    ET.indent(tree, space="\t")
    return tree


def write(dataset: DetectionDataset, destination: Path, options: WriteOptions) -> None:
    annotations = destination / "Annotations"
    images = destination / "JPEGImages"
    sets = destination / "ImageSets" / "Main"
    for folder in (annotations, images, sets):
        folder.mkdir(parents=True, exist_ok=True)
    stems = unique_stems((s, r.file_name) for s, rs in dataset.splits.items() for r in rs)
    for split, records in dataset.splits.items():
        ids = []
        for record in records:
            stem = stems[(split, record.file_name)]
            suffix = record.path.suffix if is_image_file(record.path) else ".jpg"
            file_name = f"{stem}{suffix}"
            place_image(record.path, images / file_name, options.image_mode)
            tree = _annotation_xml(record, file_name, dataset.classes)
            tree.write(annotations / f"{stem}.xml", encoding="unicode")
            ids.append(stem)
        (sets / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids), encoding="utf-8")
    write_class_list(destination, dataset.classes)
