"""rank on a detector torchvision builds itself (the v2 heads, MobileNetV3-FPN, SSD300, SSDlite320):
its body read as a transferdet backbone and its neck around it give exactly the maps torchvision's
own model computes, the levels are named by stride, and rank scores the file on its body, its neck
levels and its heads' taps (fc7, cls_tower), refusing in one line a tap the detector does not have."""

from __future__ import annotations

import pytest
import torch

from detector_kit import random_torchvision_detector
from transferdet.models.native_detectors import NATIVE, build_native
from transferdet.transfer.native_taps import native_taps
from transferdet.transfer.poolers import available_layers

LEVELS = {  # torchvision's neck key -> rank's name (by stride; SSD's in order from its first map)
    "fasterrcnn_resnet50_fpn_v2": {"0": "p2", "1": "p3", "2": "p4", "3": "p5", "pool": "p6"},
    "maskrcnn_resnet50_fpn_v2": {"0": "p2", "1": "p3", "2": "p4", "3": "p5", "pool": "p6"},
    "retinanet_resnet50_fpn_v2": {"0": "p3", "1": "p4", "2": "p5", "p6": "p6", "p7": "p7"},
    "fasterrcnn_mobilenet_v3_large_fpn": {"1": "p5", "pool": "p6"},  # "0" is at stride 32 too
    "fasterrcnn_mobilenet_v3_large_320_fpn": {"1": "p5", "pool": "p6"},
    "ssd300_vgg16": {"0": "p3", "1": "p4", "2": "p5", "3": "p6", "4": "p7", "5": "p8"},
    "ssdlite320_mobilenet_v3_large": {"0": "p4", "1": "p5", "2": "p6", "3": "p7", "4": "p8", "5": "p9"},
}
TWO_STAGE = ["fpn_ms", "fc7"]
HEAD_TAPS = {name: TWO_STAGE for name in NATIVE if "rcnn" in name} | {
    "retinanet_resnet50_fpn_v2": ["fpn_ms", "cls_tower"],  # SSD: no tower, levels of unequal widths
    "ssd300_vgg16": [],
    "ssdlite320_mobilenet_v3_large": [],
}


def _file(name: str, path) -> str:  # noqa: ANN001
    torch.save(random_torchvision_detector(name).state_dict(), path)
    return f"torchvision:{name}@{path}"


@pytest.mark.parametrize("name", list(NATIVE))
def test_the_neck_over_the_body_is_torchvisions_own(name):
    torch.manual_seed(0)
    model = build_native(name, 4, {}, "frozen_bn", 0).eval()  # the structure is what counts here: random weights
    taps = native_taps(model)
    images = torch.rand(1, 3, 320, 352)
    with torch.no_grad():
        expected = model.backbone(images)
        got = taps.backbone.from_body(taps.backbone.body(images))
    assert list(got) == list(expected)
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=0, atol=0)
    assert taps.backbone.level_names == LEVELS[name]
    body = taps.backbone.body
    layers = available_layers(body, taps)
    assert [lv for lv in layers if lv not in body.feature_names] == [*LEVELS[name].values(), *HEAD_TAPS[name]]
    assert all(body.strides[f] == 2 ** int(f[1]) for f in body.feature_names)  # cK (and cK_<module>) at 2**K


def test_rank_scores_a_native_detector_on_its_heads(tmp_path, bccd, cli):
    spec = _file("fasterrcnn_mobilenet_v3_large_320_fpn", tmp_path / "m.pth")
    result = cli("rank", "--data", bccd, "--models", f"timm:resnet18@random,{spec}", "--layer", "c5,p5,fpn_ms,fc7",
                 "--metrics", "logme,model_size", "--max-images", "6", "--image-size", "160", "--device", "cpu",
                 "--json")  # fmt: skip
    assert result.code == 0, result.err
    rows = [r for r in result.json() if r["metric"] == "logme"]
    assert {r["layer"] for r in rows if r["model"] == spec} == {"c5", "p5", "fpn_ms", "fc7"}
    assert {r["layer"] for r in rows if r["model"] != spec} == {"c5"}  # a backbone has no detector taps
    assert all(r["score"] is not None for r in rows)


def test_ssd_has_no_multiscale_tap_and_says_which_it_has(tmp_path, bccd, cli):
    spec = _file("ssdlite320_mobilenet_v3_large", tmp_path / "s.pth")
    small = ["--max-images", "4", "--image-size", "160", "--device", "cpu"]
    ok = cli("rank", "--data", bccd, "--models", spec, "--layer", "p4,p9", "--metrics", "logme", "--json", *small)
    assert ok.code == 0, ok.err
    assert {r["layer"] for r in ok.json()} == {"p4", "p9"}
    result = cli("rank", "--data", bccd, "--models", spec, "--layer", "fpn_ms", *small)
    errors = [line for line in result.err.splitlines() if line.startswith("error:")]
    assert result.code == 2 and "Traceback" not in result.err and len(errors) == 1
    assert "this model has c4, c5, p4, p5, p6, p7, p8, p9" in errors[0]
