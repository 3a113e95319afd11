"""Ranking on a trained detector's FPN levels, fpn_ms and fc7 (a transferdet run folder as WEIGHTS)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.ops import roi_align

from detector_kit import fpn_level, normalised_image
from transferdet.data import formats
from transferdet.errors import TransferdetError
from transferdet.models.backbones import build_backbone
from transferdet.models.specs import parse_spec
from transferdet.run_detector import load_detector
from transferdet.runs import RunDir
from transferdet.train.engine import train
from transferdet.train.job import TrainJob
from transferdet.train.recipes import load_recipe
from transferdet.transfer.features import extract_box_features
from transferdet.transfer.rank import RankSettings, rank

ARCH = "timm:resnet18"


@pytest.fixture(scope="module")
def faster_rcnn_run(synthetic, tmp_path_factory) -> Path:
    """A (barely) trained Faster R-CNN FPN run on the synthetic digits."""
    out = tmp_path_factory.mktemp("detector") / "run"
    recipe = load_recipe("quick", ["iterations=2", "batch_size=2", "fpn_channels=64", "checkpoint_every=2"])
    train(TrainJob(synthetic, f"{ARCH}@random", "faster_rcnn_fpn", recipe, out, device="cpu"))
    return out


def test_fpn_levels_fpn_ms_and_fc7_of_a_trained_detector(synthetic, faster_rcnn_run):
    model, _ = load_detector(RunDir(faster_rcnn_run))
    body = model.backbone.body
    records = formats.read(synthetic).records("train")[:2]
    boxes = sum(r.num_boxes for r in records)
    p3 = extract_box_features(body, records, "p3", image_size=128, detector=model)
    assert p3.features.shape == (boxes, 64)
    fc7 = extract_box_features(body, records, "fc7", image_size=128, detector=model)
    assert fc7.features.shape == (boxes, model.roi_heads.box_head.fc7.out_features)
    multi = extract_box_features(body, records, "fpn_ms", image_size=128, detector=model)
    # by hand: each box from level k = floor(4 + log2(sqrt(area) / 224)), clamped to the FPN's c2..c5
    with torch.no_grad():
        maps = model.backbone(normalised_image(records[0].path, body))
    for row, box in enumerate(records[0].boxes):
        level = fpn_level(box, lowest=2)
        pooled = roi_align(maps[f"c{level}"], [torch.tensor(box[None], dtype=torch.float32)], 7, 2.0**-level, 2)
        np.testing.assert_allclose(multi.features[row], pooled.mean(dim=(2, 3))[0].double(), rtol=1e-4, atol=1e-5)


def test_rank_accepts_a_run_folder_and_names_its_layers(synthetic, faster_rcnn_run, tmp_path):
    spec = f"{ARCH}@{faster_rcnn_run}"
    assert parse_spec(spec).is_detector_run
    for layer in ("c4", "p2", "p6", "fpn_ms", "fc7"):
        settings = RankSettings(layers=layer, image_size=128, max_images=8, device="cpu")
        rows = rank(synthetic, [spec], ["logme"], settings=settings, cache_dir=tmp_path)
        assert [(r["model"], r["layer"], r["metric"]) for r in rows] == [(spec, layer, "logme")]
        assert np.isfinite(rows[0]["score"])
    layers = "c1, c2, c3, c4, c5, p2, p3, p4, p5, p6, fpn_ms, fc7"
    with pytest.raises(TransferdetError, match=f"layer 'p9': this model has {layers}"):
        rank(synthetic, [spec], ["logme"], settings=RankSettings(layers="p9", image_size=128, device="cpu"))
    with pytest.raises(TransferdetError, match="trained timm:resnet18, not timm:resnet34"):
        rank(synthetic, [f"timm:resnet34@{faster_rcnn_run}"], ["logme"], settings=RankSettings(image_size=128))
    with pytest.raises(TransferdetError, match="only --features local applies"):
        rank(synthetic, [spec], ["logme"], settings=RankSettings(layers="fc7", features="global", image_size=128))


def test_detector_layers_on_a_plain_backbone_say_what_they_need(synthetic, tmp_path):
    records = formats.read(synthetic).records("train")[:1]
    with pytest.raises(TransferdetError, match="FPN levels, fpn_ms and fc7 need a detector"):
        extract_box_features(build_backbone(ARCH), records, "fpn_ms", image_size=128)
    (tmp_path / "not-a-run").mkdir()
    with pytest.raises(TransferdetError, match="a folder, but not a transferdet training run"):
        parse_spec(f"{ARCH}@{tmp_path / 'not-a-run'}")


def test_backbone_and_detector_layers_come_from_one_pass(synthetic, faster_rcnn_run, forward_passes):
    from transferdet.transfer.features import extract_layers

    model, _ = load_detector(RunDir(faster_rcnn_run))
    forward_passes[0] = 0  # building probes the stage list once at another size; count the extraction's passes
    body = model.backbone.body
    records = formats.read(synthetic).records("train")[:3]
    layers = ["c4", "p3", "fpn_ms", "fc7"]
    together = extract_layers(body, records, layers, image_size=128, batch_size=8, detector=model)
    assert forward_passes[0] == 1
    for layer in layers:
        alone = extract_box_features(body, records, layer, image_size=128, detector=model)
        np.testing.assert_allclose(together[layer].features, alone.features, rtol=1e-6, atol=1e-7)
