"""Pretraining backbones on synthetic source domains: learns, is seeded, loads as a model spec."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from transferdet.data.glyphs import glyph_source
from transferdet.errors import TransferdetError
from transferdet.models.backbones import build_backbone
from transferdet.zoo.pretrain import PretrainConfig, cache_dir, glyph_crops, pretrain, pretrained_path, read_record


def test_glyph_crops_hold_one_glyph_each() -> None:
    images, labels = glyph_crops(glyph_source("letters"), np.random.default_rng(0), 16, 32)
    assert images.shape == (16, 3, 32, 32) and labels.shape == (16,)
    assert float(images.min()) >= 0.0 and float(images.max()) <= 1.0
    assert all(float(image.max()) > 0.5 for image in images)  # ink in every crop
    assert int(labels.max()) < 26


def test_pretraining_learns_is_seeded_and_loads_as_a_spec(tmp_path: Path) -> None:
    config = PretrainConfig(source="shapes", arch="timm:resnet10t", steps=40, batch_size=32)
    path = tmp_path / "shapes.pt"
    record = pretrain(config, path)
    assert record["accuracy"] > 0.4  # 8 shapes: chance is 0.125
    assert read_record(path)["accuracy"] == record["accuracy"]
    # the same seed gives the same weights
    again = pretrain(PretrainConfig(source="shapes", arch="timm:resnet10t", steps=2, batch_size=8), tmp_path / "a.pt")
    twice = pretrain(PretrainConfig(source="shapes", arch="timm:resnet10t", steps=2, batch_size=8), tmp_path / "b.pt")
    first, second = (torch.load(tmp_path / n, weights_only=True)["state_dict"] for n in ("a.pt", "b.pt"))
    assert again == twice and all(torch.equal(first[k], second[k]) for k in first)
    # the checkpoint is a model spec like any other: loaded strictly, features differ from random init
    backbone = build_backbone(f"timm:resnet10t@{path}")
    assert backbone.load_report.missing == []
    image = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        pretrained = backbone.eval()(image)["c5"]
        random = build_backbone("timm:resnet10t@random").eval()(image)["c5"]
    assert not torch.allclose(pretrained, random)
    # its 8-way classifier comes along (for LEEP/NCE): on pooled c5 it gives the pretrained model's logits
    import timm

    full = timm.create_model("resnet10t", num_classes=8)
    full.load_state_dict(torch.load(path, weights_only=True)["state_dict"])
    with torch.no_grad():
        logits = backbone.classifier(pretrained.mean(dim=(2, 3)))
        torch.testing.assert_close(logits, full.eval()(image))
    assert logits.shape == (1, 8)


def test_pretrain_cli_reuses_the_cached_checkpoint(tmp_path: Path, cli, monkeypatch) -> None:
    monkeypatch.setenv("TRANSFERDET_CACHE", str(tmp_path / "cache"))
    args = ["zoo", "pretrain", "--source", "digits", "--arch", "timm:resnet10t", "--steps", "2", "--batch-size", "4"]
    first = cli(*args)
    assert first.code == 0, first.err
    path = pretrained_path(PretrainConfig(source="digits", arch="timm:resnet10t", steps=2, batch_size=4))
    assert path.parent == cache_dir() == tmp_path / "cache" / "zoo" and path.is_file()
    assert f"timm:resnet10t@{path}" in first.out
    stamp = path.stat().st_mtime_ns
    second = cli(*args)
    assert second.code == 0 and "reused" in second.err and path.stat().st_mtime_ns == stamp


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"source": "kanji", "arch": "timm:resnet10t"}, "unknown source domain 'kanji'"),
        ({"source": "digits", "arch": "timm:resnet10t@pretrained"}, "give the architecture only"),
        ({"source": "digits", "arch": "resnet10t"}, "expected timm:NAME"),
    ],
)
def test_bad_pretrain_settings_are_clear_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(TransferdetError, match=message):
        PretrainConfig(**kwargs)


def test_a_foreign_file_is_not_a_pretrained_record(tmp_path: Path) -> None:
    path = tmp_path / "x.pt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(TransferdetError, match="not a checkpoint written by `transferdet zoo pretrain`"):
        read_record(path)
