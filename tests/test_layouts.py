"""Each format's layouts are found automatically (or with --images/--annotations) and read right."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from transferdet.data import formats
from transferdet.data.formats.base import ReadOptions


def image(path: Path, size=(100, 80)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size).save(path)


def coco_json(path: Path, file_name="a.jpg", bbox=(10, 20, 30, 40)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {
                "images": [{"id": 5, "file_name": file_name, "width": 100, "height": 80}],
                "annotations": [{"id": 1, "image_id": 5, "category_id": 3, "bbox": list(bbox)}],
                "categories": [{"id": 3, "name": "zebra"}],
            }
        )
    )


def test_coco_standard_layout(tmp_path):
    for split in ("train2017", "val2017"):
        coco_json(tmp_path / "annotations" / f"instances_{split}.json")
        image(tmp_path / split / "a.jpg")
    dataset = formats.read(tmp_path)
    assert dataset.source_format == "coco" and list(dataset.splits) == ["train2017", "val2017"]
    record = dataset.splits["val2017"][0]
    assert record.path == tmp_path / "val2017" / "a.jpg"
    np.testing.assert_array_equal(record.boxes, [[10, 20, 40, 60]])
    assert dataset.classes == ["zebra"] and record.labels.tolist() == [0]


def test_coco_json_file_with_images_option(tmp_path):
    coco_json(tmp_path / "labels" / "mine.json")
    image(tmp_path / "pictures" / "a.jpg")
    dataset = formats.read(tmp_path / "labels" / "mine.json", options=ReadOptions(images=tmp_path / "pictures"))
    assert list(dataset.splits) == ["mine"]
    assert dataset.splits["mine"][0].path == tmp_path / "pictures" / "a.jpg"


def voc_xml(path: Path, file_name: str, name="cell") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"<annotation><filename>{file_name}</filename><object><name>{name}</name><bndbox><xmin>3</xmin>"
        "<ymin>4</ymin><xmax>30</xmax><ymax>40</ymax></bndbox></object></annotation>"
    )


@pytest.mark.parametrize("folder", ["annotations", "annots", "Annotations"])
def test_voc_plain_layout_found(tmp_path, folder):
    voc_xml(tmp_path / folder / "x.xml", "x.png")
    image(tmp_path / "images" / "x.png")
    dataset = formats.read(tmp_path)
    assert dataset.source_format == "voc"
    record = dataset.records()[0]
    assert record.path == tmp_path / "images" / "x.png"
    assert (record.width, record.height) == (0, 0)  # no <size>: read from the header on validation
    assert dataset.split_origin == "none"


def test_voc_explicit_folders(tmp_path):
    voc_xml(tmp_path / "somewhere" / "x.xml", "x.png")
    image(tmp_path / "elsewhere" / "x.png")
    options = ReadOptions(annotations=tmp_path / "somewhere", images=tmp_path / "elsewhere")
    dataset = formats.read(tmp_path, "voc", options)
    assert dataset.records()[0].path == tmp_path / "elsewhere" / "x.png"


def test_seeded_split_for_data_without_one(cli, tmp_path):
    for i in range(10):
        voc_xml(tmp_path / "annotations" / f"{i}.xml", f"{i}.png")
        image(tmp_path / "images" / f"{i}.png")
    first = cli("data", "info", tmp_path, "--json")
    assert "no split in the data; made a seeded 80/20 train/test split (seed 0): 8 train, 2 test" in first.err
    assert {k: v["images"] for k, v in first.json()["splits"].items()} == {"train": 8, "test": 2}
    from transferdet.data.loader import load_dataset

    a, b = load_dataset(tmp_path, seed=1), load_dataset(tmp_path, seed=1)
    names = lambda d: {s: [r.file_name for r in rs] for s, rs in d.splits.items()}  # noqa: E731
    assert names(a) == names(b)
    assert names(a) != names(load_dataset(tmp_path, seed=2))
    from transferdet.data.split import apply_split_file, save_split

    save_split(a, tmp_path / "split.json")
    again = apply_split_file(formats.read(tmp_path), tmp_path / "split.json")
    assert names(again) == names(a)


def yolo_export(root: Path, yaml_text: str) -> None:
    for split in ("train", "valid"):
        image(root / split / "images" / f"{split}.jpg", (200, 100))
        (root / split / "labels").mkdir(parents=True)
        (root / split / "labels" / f"{split}.txt").write_text("1 0.5 0.5 0.1 0.2\n")
    (root / "data.yaml").write_text(yaml_text)


def test_yolo_roboflow_paths_fall_back_with_warning(tmp_path):
    yolo_export(tmp_path, "train: ../train/images\nval: ../valid/images\nnc: 2\nnames: ['a', 'b']\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = formats.read(tmp_path)
    messages = sorted(str(w.message).split(": ", 1)[1] for w in caught)
    assert messages == [
        "'train: ../train/images' does not resolve; using train/images next to data.yaml",
        "'val: ../valid/images' does not resolve; using valid/images next to data.yaml",
    ]
    assert list(dataset.splits) == ["train", "val"]
    record = dataset.splits["val"][0]
    np.testing.assert_allclose(record.boxes, [[90, 40, 110, 60]])
    assert dataset.classes[record.labels[0]] == "b"


def test_yolo_names_as_mapping_and_path_key(tmp_path):
    yolo_export(tmp_path / "ds", "path: ds\ntrain: train/images\nnames: {0: a, 1: b}\n")
    shutil.move(tmp_path / "ds" / "data.yaml", tmp_path / "data.yaml")
    dataset = formats.read(tmp_path / "data.yaml")
    assert dataset.classes == ["a", "b"] and len(dataset.splits["train"]) == 1


def test_yolo_polygon_label_gives_box_and_mask(tmp_path):
    yolo_export(tmp_path, "train: train/images\nnames: [a, b]\n")
    (tmp_path / "train" / "labels" / "train.txt").write_text("0 0.1 0.1 0.5 0.1 0.5 0.6 0.1 0.6\n")
    record = formats.read(tmp_path).splits["train"][0]
    np.testing.assert_allclose(record.boxes, [[20, 10, 100, 60]])
    assert record.masks is not None and len(record.masks[0][0]) == 8


def test_csv_presets(tmp_path):
    image(tmp_path / "images" / "p.jpg")
    (tmp_path / "xywh.csv").write_text("image,label,x,y,w,h\np.jpg,dog,1,2,10,20\n")
    dataset = formats.read(tmp_path / "xywh.csv")
    np.testing.assert_array_equal(dataset.records()[0].boxes, [[1, 2, 11, 22]])
    (tmp_path / "wheat.csv").write_text('image_id,width,height,bbox,source\np,100,80,"[5.0, 6.0, 7.0, 8.0]",x\n')
    wheat = formats.read(tmp_path / "wheat.csv", options=ReadOptions(class_name="wheat"))
    assert wheat.classes == ["wheat"]
    record = wheat.records()[0]
    assert record.path == tmp_path / "images" / "p.jpg"
    np.testing.assert_array_equal(record.boxes, [[5, 6, 12, 14]])
    (tmp_path / "odd.csv").write_text("pic,kind,a,b,c,d\np.jpg,cat,1,2,3,4\n")
    mapping = {"file": "pic", "class": "kind", "x1": "a", "y1": "b", "x2": "c", "y2": "d"}
    odd = formats.read(tmp_path / "odd.csv", options=ReadOptions(csv_columns=mapping))
    assert odd.classes == ["cat"]
    np.testing.assert_array_equal(odd.records()[0].boxes, [[1, 2, 3, 4]])


def test_txt_layout(tmp_path):
    image(tmp_path / "train" / "images" / "0.png")
    (tmp_path / "train" / "labels").mkdir(parents=True)
    (tmp_path / "train" / "labels" / "0.txt").write_text("label,xmin,ymin,xmax,ymax\n7,1,2,30,40\n10,5,5,9,9\n")
    dataset = formats.read(tmp_path)
    assert dataset.source_format == "txt" and dataset.classes == ["7", "10"]
    np.testing.assert_array_equal(dataset.records()[0].boxes, [[1, 2, 30, 40], [5, 5, 9, 9]])
