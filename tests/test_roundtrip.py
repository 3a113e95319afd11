"""Every format converts to every other and back, keeping every box (to 0.5 px) and class name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from transferdet.data import formats
from transferdet.data.dataset import DetectionDataset
from transferdet.data.formats.base import WriteOptions

FORMATS = ("coco", "voc", "yolo", "csv", "txt")
TOLERANCE = 0.5


def annotations_by_image(dataset: DetectionDataset) -> dict[str, list[tuple[str, np.ndarray]]]:
    """Image stem -> its (class name, box) pairs in a canonical order."""
    result = {}
    for record in dataset.records():
        pairs = sorted(
            ((dataset.classes[label], box) for box, label in zip(record.boxes, record.labels, strict=True)),
            key=lambda p: (p[0], *np.round(p[1]).tolist()),
        )
        stem = Path(record.file_name).stem
        assert stem not in result, f"two images named {stem}"
        result[stem] = pairs
    return result


def assert_same(original: DetectionDataset, converted: DetectionDataset, route: str) -> None:
    assert converted.classes == original.classes, route
    assert sorted(len(r) for r in converted.splits.values()) == sorted(len(r) for r in original.splits.values())
    expected, actual = annotations_by_image(original), annotations_by_image(converted)
    assert expected.keys() == actual.keys(), route
    for stem, pairs in expected.items():
        got = actual[stem]
        assert [n for n, _ in got] == [n for n, _ in pairs], f"{route}: classes of {stem}"
        if pairs:
            diff = np.abs(np.stack([b for _, b in got]) - np.stack([b for _, b in pairs])).max()
            assert diff <= TOLERANCE, f"{route}: boxes of {stem} moved {diff} px"


def write_read(dataset: DetectionDataset, target: Path, fmt: str) -> DetectionDataset:
    formats.write(dataset, target, fmt, WriteOptions(image_mode="symlink"))
    assert formats.detect_format(target) == fmt
    return formats.read(target)


@pytest.mark.parametrize("name", ["bccd", "chess", "synthetic"])
def test_every_format_to_every_other_and_back(name, request, tmp_path):
    source = request.getfixturevalue(name)
    original = formats.read(source)  # as annotated: bccd's two zero-area boxes travel too
    assert original.num_boxes() > 0
    for first in FORMATS:
        in_first = write_read(original, tmp_path / first, first)
        assert_same(original, in_first, f"{name} -> {first}")
        for second in FORMATS:
            if second == first:
                continue
            route = f"{name} -> {first} -> {second}"
            in_second = write_read(in_first, tmp_path / f"{first}-{second}", second)
            assert_same(original, in_second, route)
            back = write_read(in_second, tmp_path / f"{first}-{second}-{first}", first)
            assert_same(original, back, route + f" -> {first}")


def test_masks_survive_coco_roundtrip(synthetic, tmp_path):
    from transferdet.data.masks import record_masks

    original = formats.read(synthetic)
    assert original.has_masks
    again = write_read(original, tmp_path / "again", "coco")
    for before, after in zip(original.records(), again.records(), strict=True):
        np.testing.assert_array_equal(record_masks(before), record_masks(after))


def test_convert_cli_reports_and_keeps_splits(cli, bccd, tmp_path):
    result = cli("data", "convert", bccd, tmp_path / "out", "--to", "yolo", "--image-mode", "symlink")
    assert result.code == 0, result.err
    assert "dropped 2 zero area" in result.err  # the default policy, one warning counting them
    converted = formats.read(tmp_path / "out")
    assert converted.num_boxes() == 4888 - 2
    assert {k: len(v) for k, v in converted.splits.items()} == {"train": 205, "val": 87, "test": 72}
    again = cli("data", "convert", bccd, tmp_path / "out", "--to", "yolo")
    assert again.code == 2 and "already exists" in again.err
