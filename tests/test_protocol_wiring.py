"""Settings that the house issue wired up: a recipe's own detector, its evaluation size, and the
detector record a run folder keeps (the same config back, whatever it holds)."""

from __future__ import annotations

import pytest
import torch

from transferdet.bench.config import BenchConfig
from transferdet.errors import TransferdetError
from transferdet.models.anchors import AnchorSpec
from transferdet.models.backbones import build_backbone
from transferdet.models.detectors import DetectorConfig, build_detector
from transferdet.train.recipes import load_recipe, recipe_detector


def test_a_detector_config_survives_its_json_record():
    import json

    config = DetectorConfig(
        "faster_rcnn_fpn",
        3,
        min_size=(96, 128),
        max_size=160,
        fpn_channels=64,
        norm="bn",
        freeze_at=2,
        anchors=AnchorSpec((16.0, 32.0, 64.0, 128.0, 256.0), (0.5, 1.0)),
        extra={"box_batch_size_per_image": 64},
        test_size=112,
    )
    record = json.loads(json.dumps(config.to_record()))
    assert DetectorConfig.from_record(record) == config
    # a manifest written before these keys existed: classes give the class count, the rest defaults
    old = {"kind": "fcos", "classes": ["a", "b"], "min_size": [128], "max_size": 128, "fpn_channels": 128,
           "norm": "bn", "anchors": None, "ssd_scales": None}  # fmt: skip
    assert DetectorConfig.from_record(old) == DetectorConfig(
        "fcos", 2, min_size=(128,), max_size=128, fpn_channels=128, norm="bn"
    )


def test_evaluation_resizes_to_the_test_size_and_training_to_the_training_sizes():
    config = DetectorConfig("fcos", 2, min_size=(96,), max_size=400, fpn_channels=32, test_size=64)
    model = build_detector(build_backbone("timm:resnet10t"), config)
    image = torch.rand(3, 100, 200)
    model.eval()
    assert model.transform([image])[0].image_sizes == [(64, 128)]
    model.train()
    target = [{"boxes": torch.tensor([[10.0, 10.0, 50.0, 50.0]]), "labels": torch.tensor([1])}]
    assert model.transform([image], target)[0].image_sizes == [(96, 192)]
    untouched = build_detector(
        build_backbone("timm:resnet10t"), DetectorConfig("fcos", 2, min_size=(96,), fpn_channels=32)
    )
    assert untouched.eval().transform([image])[0].image_sizes == [(96, 192)]  # torchvision: the last training size


def test_a_recipe_that_fixes_its_detector_is_the_default_and_refuses_another():
    voc = load_recipe("voc_c4_24k")
    assert recipe_detector(voc, None) == "faster_rcnn_c4"
    assert recipe_detector(voc, "faster_rcnn_c4") == "faster_rcnn_c4"
    with pytest.raises(TransferdetError, match="recipe voc_c4_24k trains faster_rcnn_c4, not fcos"):
        recipe_detector(voc, "fcos")
    assert recipe_detector(load_recipe("quick"), "ssd") == "ssd"
    with pytest.raises(TransferdetError, match="recipe quick fixes no detector: give --detector"):
        recipe_detector(load_recipe("quick"), None)


def test_train_refuses_a_detector_its_recipe_does_not_train_before_writing(cli, synthetic, tmp_path):
    out = tmp_path / "run"
    result = cli("train", "--data", synthetic, "--backbone", "timm:resnet10t", "--detector", "fcos",
                 "--recipe", "voc_c4_24k", "--out", out, "--device", "cpu")  # fmt: skip
    assert result.code == 2
    assert "voc_c4_24k trains faster_rcnn_c4, not fcos" in result.err and "Traceback" not in result.err
    assert not out.exists()


def test_a_bench_config_takes_its_recipes_detector():
    base = {"datasets": ["a"], "models": ["timm:resnet10t", "timm:resnet18"]}
    assert BenchConfig.model_validate({**base, "recipe": "voc_c4_24k"}).detector == "faster_rcnn_c4"
    assert BenchConfig.model_validate(base).detector == "fcos"
    with pytest.raises(ValueError, match="trains faster_rcnn_c4, not ssd"):
        BenchConfig.model_validate({**base, "recipe": "voc_c4_24k", "detector": "ssd"})
