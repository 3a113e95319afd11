"""A corpus of malformed inputs: each is a one-line error naming the file and the element or line
(exit status 2, no traceback, no output left behind), or a counted problem in `data info`."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image


def image(path: Path, size: tuple[int, int] = (64, 48)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (20, 40, 60)).save(path)
    return path


def coco(tmp: Path, annotations=None, images=None, categories=None, raw: str | None = None) -> Path:
    folder = tmp / "coco"
    image(folder / "a.jpg")
    data = {
        "images": images if images is not None else [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48}],
        "annotations": annotations
        if annotations is not None
        else [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 2, 10, 10]}],
        "categories": categories if categories is not None else [{"id": 1, "name": "cat"}],
    }
    (folder / "annotations.json").write_text(raw if raw is not None else json.dumps(data))
    return folder


VOC_OBJECT = "<object><name>{name}</name><bndbox>{box}</bndbox></object>"
VOC_BOX = "<xmin>1</xmin><ymin>2</ymin><xmax>10</xmax><ymax>12</ymax>"


def voc(tmp: Path, body: str | None = None, split_ids: list[str] | None = None) -> Path:
    folder = tmp / "voc"
    image(folder / "JPEGImages" / "a.jpg")
    (folder / "Annotations").mkdir(parents=True)
    if body is None:
        body = VOC_OBJECT.format(name="cat", box=VOC_BOX)
    xml = f"<annotation><filename>a.jpg</filename><size><width>64</width><height>48</height></size>{body}</annotation>"
    (folder / "Annotations" / "a.xml").write_text(xml)
    if split_ids is not None:
        (folder / "ImageSets" / "Main").mkdir(parents=True)
        (folder / "ImageSets" / "Main" / "train.txt").write_text("\n".join(split_ids) + "\n")
    return folder


def yolo(tmp: Path, labels: str = "0 0.5 0.5 0.2 0.2\n", yaml_text: str | None = None) -> Path:
    folder = tmp / "yolo"
    image(folder / "train" / "images" / "a.jpg")
    (folder / "train" / "labels").mkdir(parents=True)
    (folder / "train" / "labels" / "a.txt").write_text(labels)
    (folder / "data.yaml").write_text(yaml_text if yaml_text is not None else "train: train/images\nnames: [cat]\n")
    return folder


def csv_file(tmp: Path, text: str) -> Path:
    folder = tmp / "csv"
    image(folder / "images" / "a.jpg")
    (folder / "boxes.csv").write_text(text)
    return folder / "boxes.csv"


def txt(tmp: Path, labels: str) -> Path:
    folder = tmp / "txt"
    image(folder / "images" / "a.png")
    (folder / "labels").mkdir()
    (folder / "labels" / "a.txt").write_text(labels)
    return folder


ERRORS: dict[str, tuple[Callable[[Path], Path], tuple[str, ...]]] = {
    "coco-invalid-json": (lambda t: coco(t, raw='{"images": [,]}'), ("annotations.json", "not valid JSON", "line 1")),
    "coco-no-annotations": (lambda t: coco(t, raw='{"images": [], "categories": []}'), ("no 'annotations' list",)),
    "coco-bbox-3-values": (
        lambda t: coco(t, annotations=[{"id": 7, "image_id": 1, "category_id": 1, "bbox": [1, 2, 3]}]),
        ("annotation id 7", "got 3 values"),
    ),
    "coco-unknown-image": (
        lambda t: coco(t, annotations=[{"id": 3, "image_id": 99, "category_id": 1, "bbox": [1, 2, 3, 4]}]),
        ("annotation id 3", "unknown image_id 99"),
    ),
    "coco-bbox-not-number": (
        lambda t: coco(t, annotations=[{"id": 4, "image_id": 1, "category_id": 1, "bbox": [1, "x", 3, 4]}]),
        ("annotation id 4", "'x' is not a number"),
    ),
    "coco-image-without-file-name": (lambda t: coco(t, images=[{"id": 1}]), ("images[0]", "'file_name'")),
    "coco-top-level-list": (lambda t: coco(t, raw="[1, 2]"), ("not a JSON object",)),
    "voc-invalid-xml": (lambda t: voc(t, body="<object><name>cat</name>"), ("a.xml", "not valid XML", "line 1")),
    "voc-no-bndbox": (lambda t: voc(t, body="<object><name>cat</name></object>"), ("a.xml", "<object> 1", "<bndbox>")),
    "voc-missing-ymax": (
        lambda t: voc(t, body=VOC_OBJECT.format(name="cat", box="<xmin>1</xmin><ymin>2</ymin><xmax>3</xmax>")),
        ("a.xml", "<ymax>"),
    ),
    "voc-coordinate-not-number": (
        lambda t: voc(t, body=VOC_OBJECT.format(name="cat", box=VOC_BOX.replace("<xmin>1<", "<xmin>one<"))),
        ("a.xml", "'one' is not a number"),
    ),
    "voc-split-lists-missing-file": (lambda t: voc(t, split_ids=["a", "ghost"]), ("train.txt", "line 2", "ghost.xml")),
    "yolo-invalid-yaml": (lambda t: yolo(t, yaml_text="names: [cat\ntrain: x"), ("data.yaml", "not valid YAML")),
    "yolo-no-names": (lambda t: yolo(t, yaml_text="train: train/images\n"), ("data.yaml", "no 'names'")),
    "yolo-four-values": (lambda t: yolo(t, labels="0 0.5 0.5 0.2 0.2\n0 0.5 0.5 0.2\n"), ("a.txt", "line 2", "got 4")),
    "yolo-class-not-int": (lambda t: yolo(t, labels="cat 0.5 0.5 0.2 0.2\n"), ("a.txt", "line 1", "not an integer")),
    "yolo-split-path-missing": (
        lambda t: yolo(t, yaml_text="train: train/images\nval: nowhere/else\nnames: [cat]\n"),
        ("data.yaml", "'val'", "'nowhere/else' does not exist"),
    ),
    "csv-wrong-field-count": (
        lambda t: csv_file(t, "filename,class,xmin,ymin,xmax,ymax\na.jpg,cat,1,2,10,12\na.jpg,cat,1,2,10\n"),
        ("boxes.csv", "line 3", "expected 6 fields, got 5"),
    ),
    "csv-not-number": (
        lambda t: csv_file(t, "filename,class,xmin,ymin,xmax,ymax\na.jpg,cat,abc,2,10,12\n"),
        ("boxes.csv", "line 2", "'abc' is not a number"),
    ),
    "csv-no-box-columns": (
        lambda t: csv_file(t, "filename,class,left\na.jpg,cat,1\n"),
        ("boxes.csv", "no box columns"),
    ),
    "csv-bad-bbox-json": (
        lambda t: csv_file(t, "image_id,width,height,bbox\na,64,48,[1 2 3]\n"),
        ("boxes.csv", "line 2", "not a JSON list"),
    ),
    "csv-not-utf8": (lambda t: csv_file(t, "filename,class,xmin,ymin,xmax,ymax\n") and _latin1(t), ("not a UTF-8",)),
    "txt-wrong-count": (lambda t: txt(t, "label,xmin,ymin,xmax,ymax\n3,1,2,10\n"), ("a.txt", "line 2", "got 4")),
    "path-does-not-exist": (lambda t: t / "nothing-here", ("nothing-here", "does not exist")),
    "csv-images-nowhere": (
        lambda t: _csv_without_images(t),
        ("boxes.csv", "image 'a.jpg' of its first row is in none of:", "give --images DIR"),
    ),
    "symlink-loop": (lambda t: _symlink_loop(t), ("loop-a", "a loop of symbolic links")),
    "dangling-symlink": (lambda t: _dangling(t), ("points-nowhere", "a symbolic link to", "which does not exist")),
    "yolo-label-not-utf8": (
        lambda t: _rewrite(yolo(t), "train/labels/a.txt", b"0 0.5 0.5 0.2 0.2\n\xff\xfe"),
        ("a.txt", "not a UTF-8 text file", "byte 0xff at offset 18"),
    ),
    "yolo-data-yaml-not-utf8": (
        lambda t: _rewrite(yolo(t), "data.yaml", b"train: train/images\nnames: [caf\xe9]\n"),
        ("data.yaml", "not a UTF-8 text file"),
    ),
    "voc-imageset-not-utf8": (
        lambda t: _rewrite(voc(t, split_ids=["a"]), "ImageSets/Main/train.txt", b"a\n\xe9t\xe9\n"),
        ("train.txt", "not a UTF-8 text file", "offset 2"),
    ),
    "voc-classes-txt-not-utf8": (
        lambda t: _rewrite(voc(t), "classes.txt", b"cat\nb\xe4r\n"),
        ("classes.txt", "not a UTF-8 text file", "byte 0xe4 at offset 5"),
    ),
    "no-known-format": (lambda t: _folder_with_readme(t), ("no known dataset format",)),
}


def _latin1(tmp: Path) -> Path:
    path = tmp / "csv" / "boxes.csv"
    path.write_bytes("filename,class,xmin,ymin,xmax,ymax\na.jpg,caf\xe9,1,2,10,12\n".encode("latin-1"))
    return path


def _folder_with_readme(tmp: Path) -> Path:
    (tmp / "stuff").mkdir(parents=True)
    (tmp / "stuff" / "README.md").write_text("hello")
    return tmp / "stuff"


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_structural_error_is_one_line_and_leaves_nothing(case, cli, tmp_path):
    build, expected = ERRORS[case]
    source = build(tmp_path / "in")
    out_parent = tmp_path / "out"
    out_parent.mkdir()
    result = cli("data", "convert", source, out_parent / "dst", "--to", "coco")
    assert result.code == 2, (result.out, result.err)
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("error: ")
    for fragment in expected:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    assert "Traceback" not in result.err
    assert list(out_parent.iterdir()) == [], "partial output left behind"


PROBLEMS: dict[str, tuple[Callable[[Path], Path], dict[str, int]]] = {
    "unknown-category": (
        lambda t: coco(t, annotations=[{"id": 1, "image_id": 1, "category_id": 5, "bbox": [1, 2, 3, 4]}]),
        {"unknown_class": 1},
    ),
    "duplicate-image-id": (
        lambda t: coco(t, images=[{"id": 1, "file_name": "a.jpg"}, {"id": 1, "file_name": "a.jpg"}]),
        {"duplicate_id": 1},
    ),
    "duplicate-annotation-id": (
        lambda t: coco(t, annotations=[{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4]}] * 2),
        {"duplicate_id": 1},
    ),
    "missing-image": (
        lambda t: coco(t, images=[{"id": 1, "file_name": "gone.jpg", "width": 64, "height": 48}]),
        {"missing_image": 1},
    ),
    "unreadable-image": (lambda t: _unreadable(coco(t)), {"unreadable_image": 1}),
    "negative-width": (
        lambda t: coco(t, annotations=[{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 2, -3, 4]}]),
        {"zero_area": 1},
    ),
    "out-of-bounds": (
        lambda t: coco(t, annotations=[{"id": 1, "image_id": 1, "category_id": 1, "bbox": [50, 2, 20, 4]}]),
        {"out_of_bounds": 1},
    ),
    "within-1px-tolerance": (
        lambda t: coco(t, annotations=[{"id": 1, "image_id": 1, "category_id": 1, "bbox": [-1, 0, 65, 49]}]),
        {},
    ),
    "empty-image": (lambda t: coco(t, annotations=[]), {"empty_image": 1}),
    "yolo-class-out-of-range": (lambda t: yolo(t, labels="3 0.5 0.5 0.2 0.2\n"), {"unknown_class": 1}),
    "yolo-missing-label-file": (lambda t: _without_labels(yolo(t)), {"empty_image": 1}),
    "voc-unlisted-class": (lambda t: _with_class_list(voc(t), "dog"), {"unknown_class": 1}),
    "voc-duplicate-in-split": (lambda t: voc(t, split_ids=["a", "a"]), {"duplicate_id": 1}),
    "coco-size-mismatch": (
        lambda t: coco(
            t,
            images=[{"id": 1, "file_name": "a.jpg", "width": 640, "height": 480}],
            annotations=[{"id": 1, "image_id": 1, "category_id": 1, "bbox": [100, 100, 10, 10]}],
        ),
        {"size_mismatch": 1, "out_of_bounds": 1},  # inside the stated 640 x 480, outside the real 64 x 48
    ),
    "coco-negative-size": (
        lambda t: coco(t, images=[{"id": 1, "file_name": "a.jpg", "width": -64, "height": 48}]),
        {"size_mismatch": 1},
    ),
    "coco-zero-size": (
        lambda t: coco(t, images=[{"id": 1, "file_name": "a.jpg", "width": 0, "height": 0}]),
        {"size_mismatch": 1},
    ),
    "decompression-bomb": (lambda t: _rewrite(coco(t), "a.jpg", _png_header(20000, 20000)), {"unreadable_image": 1}),
    "truncated-jpeg": (lambda t: _truncate(coco(t), "a.jpg"), {"unreadable_image": 1}),
    "truncated-png": (lambda t: _truncate(_as_png(coco(t)), "a.png"), {"unreadable_image": 1}),
}


def _rewrite(folder: Path, name: str, content: bytes) -> Path:
    (folder / name).write_bytes(content)
    return folder


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares its size and holds no pixels: Pillow reads the size without decoding."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def _truncate(folder: Path, name: str) -> Path:
    """The image redrawn larger and noisy (so that its header is intact), then cut at 3/4."""
    import numpy as np

    pixels = np.random.default_rng(0).integers(0, 256, size=(48, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(folder / name)
    data = (folder / name).read_bytes()
    (folder / name).write_bytes(data[: len(data) * 3 // 4])
    return folder


def _as_png(folder: Path) -> Path:
    image(folder / "a.png")
    content = json.loads((folder / "annotations.json").read_text())
    content["images"][0]["file_name"] = "a.png"
    (folder / "annotations.json").write_text(json.dumps(content))
    return folder


def _csv_without_images(tmp: Path) -> Path:
    path = csv_file(tmp, "filename,class,xmin,ymin,xmax,ymax\na.jpg,cat,1,2,10,12\n")
    (path.parent / "images" / "a.jpg").unlink()
    return path


def _symlink_loop(tmp: Path) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "loop-a").symlink_to(tmp / "loop-b")
    (tmp / "loop-b").symlink_to(tmp / "loop-a")
    return tmp / "loop-a"


def _dangling(tmp: Path) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "points-nowhere").symlink_to(tmp / "gone")
    return tmp / "points-nowhere"


def _unreadable(folder: Path) -> Path:
    (folder / "a.jpg").write_bytes(b"this is not a jpeg")
    return folder


def _without_labels(folder: Path) -> Path:
    (folder / "train" / "labels" / "a.txt").unlink()
    return folder


def _with_class_list(folder: Path, names: str) -> Path:
    (folder / "classes.txt").write_text(names + "\n")
    return folder


@pytest.mark.parametrize("case", sorted(PROBLEMS))
def test_counted_problem(case, cli, tmp_path):
    build, expected = PROBLEMS[case]
    result = cli("data", "info", build(tmp_path), "--json")
    assert result.code == 0, result.err
    splits = result.json()["splits"].values()  # data without splits gets a seeded train/test split
    totals = {key: sum(split["problems"][key] for split in splits) for key in next(iter(splits))["problems"]}
    assert totals == {key: expected.get(key, 0) for key in totals}


def test_bad_box_policies(cli, tmp_path):
    source = coco(
        tmp_path,
        annotations=[
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [50, 2, 20, 4]},  # out of bounds
            {"id": 2, "image_id": 1, "category_id": 1, "bbox": [5, 5, 0, 4]},  # zero area
            {"id": 3, "image_id": 1, "category_id": 1, "bbox": [5, 5, 10, 10]},
        ],
    )
    from transferdet.data import formats

    drop = cli("data", "convert", source, tmp_path / "drop", "--to", "coco")
    assert drop.code == 0 and drop.err.count("warning:") == 1
    assert "1 zero area, 1 out of bounds" in drop.err
    assert formats.read(tmp_path / "drop").num_boxes() == 1

    clip = cli("data", "convert", source, tmp_path / "clip", "--to", "coco", "--on-bad-box", "clip")
    assert clip.code == 0
    boxes = sorted(formats.read(tmp_path / "clip").records()[0].boxes.tolist())
    assert boxes == [[5, 5, 15, 15], [50, 2, 64, 6]]

    error = cli("data", "convert", source, tmp_path / "err", "--to", "coco", "--on-bad-box", "error")
    assert error.code == 2 and "a.jpg" in error.err and "zero area box [5, 5, 5, 9]" in error.err
    assert not (tmp_path / "err").exists()

    keep = cli("data", "convert", source, tmp_path / "keep", "--to", "coco", "--on-bad-box", "keep")
    assert keep.code == 0 and formats.read(tmp_path / "keep").num_boxes() == 3


def test_missing_image_with_keep_fails_cleanly(cli, tmp_path):
    source = coco(tmp_path, images=[{"id": 1, "file_name": "gone.jpg", "width": 64, "height": 48}])
    (tmp_path / "out").mkdir()
    result = cli("data", "convert", source, tmp_path / "out" / "dst", "--to", "voc", "--on-bad-box", "keep")
    assert result.code == 2 and "gone.jpg" in result.err and "does not exist" in result.err
    assert list((tmp_path / "out").iterdir()) == []


def test_error_from_installed_command_has_no_traceback(tmp_path):
    """The real console entry point: exit status 2 and a single line on stderr."""
    result = subprocess.run(
        [sys.executable, "-m", "transferdet", "data", "info", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: {tmp_path / 'missing'}: path does not exist"]


def test_a_coco_folder_with_one_unnamed_json_gets_the_seeded_split(cli, tmp_path):
    folder = coco(tmp_path)
    for i in range(2, 11):
        image(folder / f"{i}.jpg")
    content = json.loads((folder / "annotations.json").read_text())
    content["images"] += [{"id": i, "file_name": f"{i}.jpg", "width": 64, "height": 48} for i in range(2, 11)]
    (folder / "annotations.json").write_text(json.dumps(content))
    info = cli("data", "info", folder, "--json").json()
    assert info["split_origin"].startswith("seeded 80/20 train/test")
    assert {name: split["images"] for name, split in info["splits"].items()} == {"train": 8, "test": 2}


def test_a_yolo_test_folder_the_data_yaml_does_not_name_is_read_with_a_warning(cli, tmp_path):
    folder = yolo(tmp_path, yaml_text="train: train/images\nval: train/images\nnames: [cat]\n")
    image(folder / "test" / "images" / "b.jpg")
    (folder / "test" / "labels").mkdir(parents=True)
    (folder / "test" / "labels" / "b.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    result = cli("data", "info", folder, "--json")
    assert result.code == 0 and "no 'test' key" in result.err and "read as the test split" in result.err
    assert result.json()["splits"]["test"]["boxes"] == 1
    listed = yolo(tmp_path / "listed", yaml_text="train: train/images\ntest: train/images\nnames: [cat]\n")
    image(listed / "test" / "images" / "b.jpg")
    (listed / "test" / "labels").mkdir(parents=True)
    again = cli("data", "info", listed, "--json")
    assert "no 'test' key" not in again.err and again.json()["splits"]["test"]["images"] == 1


def test_a_csv_finds_its_images_in_its_parents_images_folder(cli, tmp_path):
    image(tmp_path / "images" / "a.jpg")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "labels.csv").write_text("filename,class,xmin,ymin,xmax,ymax\na.jpg,cat,1,2,10,12\n")
    info = cli("data", "info", tmp_path / "data" / "labels.csv", "--json").json()
    assert sum(split["problems"]["missing_image"] for split in info["splits"].values()) == 0
    assert sum(split["boxes"] for split in info["splits"].values()) == 1


def test_a_csv_whose_first_image_is_missing_counts_it_and_reads_the_rest(cli, tmp_path):
    path = csv_file(tmp_path, "filename,class,xmin,ymin,xmax,ymax\ngone.jpg,cat,1,2,10,12\na.jpg,cat,1,2,10,12\n")
    info = cli("data", "info", path, "--json")
    assert info.code == 0, info.err
    splits = info.json()["splits"].values()
    assert sum(split["problems"]["missing_image"] for split in splits) == 1
    assert sum(split["images"] for split in splits) == 2
