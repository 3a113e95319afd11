"""Synthetic MNIST-like data: the recipe's promises, determinism, the CLI, and the picture."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from transferdet.data import formats
from transferdet.data.glyphs import SOURCES, glyph_source
from transferdet.data.masks import record_masks
from transferdet.data.synthetic import SynthConfig, box_iou, render_image


@pytest.mark.parametrize("source", SOURCES)
def test_recipe_holds_for_every_source(source):
    glyphs = glyph_source(source)
    config = SynthConfig(source=source, images=30, seed=11)
    for index in range(config.images):
        image = render_image(glyphs, config, index)
        assert image.pixels.shape == (128, 128, 3) and image.pixels.dtype == np.uint8
        assert 1 <= len(image.boxes) <= 5
        sides = np.maximum(image.boxes[:, 2] - image.boxes[:, 0], image.boxes[:, 3] - image.boxes[:, 1])
        assert sides.max() <= 49 and sides.min() >= 4
        for k, box in enumerate(image.boxes):
            others = np.delete(image.boxes, k, axis=0)
            assert (box_iou(box, others) < 0.25).all()
            # the box is tight around the glyph's mask pixels
            ys, xs = np.nonzero(image.masks[k])
            assert [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1] == box.tolist()
            # and the glyph is visible there
            assert image.pixels[ys, xs, 0].mean() > 40
        assert set(image.labels.tolist()) <= set(range(len(glyphs.classes)))


def digest(folder: Path) -> str:
    sha = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            sha.update(path.relative_to(folder).as_posix().encode())
            sha.update(path.read_bytes())
    return sha.hexdigest()


def test_same_seed_same_dataset(cli, tmp_path):
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        result = cli("data", "synth", tmp_path / name, "--source", "letters", "--images", 12, "--seed", seed)
        assert result.code == 0, result.err
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert digest(tmp_path / "a") != digest(tmp_path / "c")


def test_cli_writes_splits_masks_and_options(cli, tmp_path):
    result = cli(
        "data",
        "synth",
        tmp_path / "s",
        "--source",
        "shapes",
        "--images",
        20,
        "--size",
        96,
        "--classes",
        3,
        "--noise",
        0.05,
        "--clutter",
        2,
        "--to",
        "yolo",
    )
    assert result.code == 0, result.err
    dataset = formats.read(tmp_path / "s")
    assert dataset.source_format == "yolo"
    assert dataset.classes == ["circle", "square", "triangle"]
    assert {k: len(v) for k, v in dataset.splits.items()} == {"train": 16, "test": 4}
    assert all(r.width == 96 for r in dataset.records())
    bad = cli("data", "synth", tmp_path / "x", "--source", "emoji")
    assert bad.code == 2 and "choose from digits, letters, symbols, shapes" in bad.err


def test_masks_match_boxes_in_written_coco(synthetic):
    dataset = formats.read(synthetic)
    assert dataset.has_masks
    for record in dataset.records():
        masks = record_masks(record)
        for mask, box in zip(masks, record.boxes, strict=True):
            ys, xs = np.nonzero(mask)
            assert [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1] == box.tolist()


def test_show_draws_boxes_and_masks(cli, synthetic, tmp_path):
    out = tmp_path / "grid.png"
    result = cli("data", "show", synthetic, "--split", "train", "--n", 4, "--tile", 128, "--out", out)
    assert result.code == 0, result.err
    picture = np.asarray(Image.open(out).convert("RGB"))
    assert picture.shape == (2 * 128 + 3 * 4, 2 * 128 + 3 * 4, 3)
    # coloured pixels (boxes, shaded masks) appear on the grey-on-black synthetic images
    colour = np.abs(picture.astype(int) - picture.mean(axis=2, keepdims=True)).max(axis=2) > 60
    assert colour.sum() > 500
