"""torchvision classifiers that are not one sequence of stages (RegNet, GoogLeNet, ...) as feature
extractors: maps at power-of-two strides, FPN detectors, freezing, checkpoints, ranking; and
AlexNet's stride that is not a power of two on the stage-list path."""

from __future__ import annotations

import pytest
import torch
import torchvision

from transferdet.errors import TransferdetError
from transferdet.models.backbones import build_backbone
from transferdet.models.detectors import DetectorConfig, build_detector
from transferdet.models.extractor_backbone import ExtractorBackbone
from transferdet.models.norms import freeze_stages

REGNET = "torchvision:regnet_y_400mf"


def test_regnet_maps_at_power_of_two_strides_from_its_own_modules() -> None:
    backbone = build_backbone(f"{REGNET}@random").eval()
    assert isinstance(backbone, ExtractorBackbone)
    assert backbone.strides == {"c1": 2, "c2": 4, "c3": 8, "c4": 16, "c5": 32}
    assert backbone.channels == {"c1": 32, "c2": 48, "c3": 104, "c4": 208, "c5": 440}
    with torch.no_grad():
        maps = backbone(torch.zeros(1, 3, 64, 96))
    assert {k: tuple(v.shape[1:]) for k, v in maps.items()} == {
        "c1": (32, 32, 48), "c2": (48, 16, 24), "c3": (104, 8, 12), "c4": (208, 4, 6), "c5": (440, 2, 3)
    }  # fmt: skip
    trunk = backbone.truncated("c3")
    assert trunk.feature_names == ["c1", "c2", "c3"]
    assert {id(p) for p in trunk.parameters()} < {id(p) for p in backbone.parameters()}  # shared, fewer


def test_regnet_loads_a_torchvision_checkpoint_strictly(tmp_path) -> None:
    torch.manual_seed(3)
    model = torchvision.models.regnet_y_400mf().eval()
    path = tmp_path / "regnet.pth"
    torch.save(model.state_dict(), path)
    backbone = build_backbone(f"{REGNET}@{path}").eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = model.trunk_output(model.stem(x))
        assert torch.equal(backbone(x)["c5"], expected)


# RegNet under FCOS, Faster R-CNN FPN and RetinaNet, and ranked: tests/test_plain_backbones.py's matrix


def test_c4_is_a_one_line_error_and_freezing_follows_the_maps() -> None:
    backbone = build_backbone(f"{REGNET}@random")
    with pytest.raises(TransferdetError, match="no separate stages from c4 to c5"):
        build_detector(backbone, DetectorConfig("faster_rcnn_c4", 3, min_size=64, max_size=64))
    backbone = build_backbone(f"{REGNET}@random")
    frozen = freeze_stages(backbone, 2)
    assert frozen and all(name.startswith(("stages.body.stem", "stages.body.trunk_output.block1")) for name in frozen)
    trainable = [n for n, p in backbone.named_parameters() if p.requires_grad]
    assert trainable and all(n.startswith("stages.body.trunk_output.block") for n in trainable)


def test_alexnet_stride_snaps_to_a_power_of_two() -> None:
    backbone = build_backbone("torchvision:alexnet@random")
    assert backbone.strides["c5"] == 32 and backbone.channels["c5"] == 256


@pytest.mark.parametrize("name", ["pit_ti_224", "twins_svt_small", "hrnet_w18_small"])  # hook, getter, HRNet
def test_timm_wrappers_that_are_not_stage_lists_train_freeze_and_load_like_timm(name, tmp_path) -> None:
    import timm

    from transferdet.models.timm_maps import TimmMapsBackbone

    torch.manual_seed(0)
    path = tmp_path / "weights.pth"
    torch.save(timm.create_model(name).state_dict(), path)
    backbone = build_backbone(f"timm:{name}@{path}").eval()
    assert isinstance(backbone, TimmMapsBackbone) and {"c3", "c4", "c5"} <= set(backbone.strides)
    reference = timm.create_model(name, features_only=True, pretrained=True,
                                  pretrained_cfg_overlay={"file": str(path)}).eval()  # fmt: skip
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        ours, theirs = backbone(x), reference(x)
    assert torch.equal(ours["c5"], theirs[-1])  # timm's own load of the same weights
    model = build_detector(backbone, DetectorConfig("fcos", 3, min_size=224, max_size=224)).train()
    target = [{"boxes": torch.tensor([[10.0, 10.0, 100.0, 120.0]]), "labels": torch.tensor([1])}]
    loss = sum(model([torch.rand(3, 224, 224)], target).values())
    loss.backward()
    assert torch.isfinite(loss) and any(p.grad is not None and p.grad.abs().sum() > 0 for p in backbone.parameters())
    fresh = build_backbone(f"timm:{name}@random")
    frozen = freeze_stages(fresh, 3)
    assert 0 < len(frozen) < len(list(fresh.parameters()))


def test_feature_cache_keys_carry_an_extractor_paths_version_and_leave_stage_lists_alone() -> None:
    from transferdet.models.adapters import path_version
    from transferdet.models.specs import parse_spec

    versions = {
        spec: path_version(parse_spec(f"{spec}@random"))
        for spec in ("torchvision:mobilenet_v2", "timm:resnet10t", REGNET, "timm:vit_small_patch16_224",
                     "torchvision:vit_b_16")
    }  # fmt: skip
    assert versions == {
        "torchvision:mobilenet_v2": {},  # the stage list's keys are as they always were
        "timm:resnet10t": {},
        REGNET: {"backbone": "torchvision-extractor-v1"},
        "timm:vit_small_patch16_224": {"backbone": "timm-maps-v2"},
        "torchvision:vit_b_16": {"backbone": "torchvision-vit-v1"},
    }
