"""torchvision's detection weights as a whole-detector source: a state dict in torchvision's layout
(made here by the builder, random weights, as torchvision's COCO files are laid out) loads onto
transferdet's detector of the same structure and gives torchvision's own boxes and scores on real
images; legacy key names load the same; COCO names let --class-map auto copy rows; a fine-tune
from it carries every class-agnostic tensor; Keypoint R-CNN and a foreign file are one line."""

from __future__ import annotations

import re

import pytest
import torch
import torchvision

from detector_kit import bccd_images as _images
from detector_kit import freeze_norms as _freeze_norms
from detector_kit import random_torchvision_detector
from transferdet.errors import TransferdetError
from transferdet.models.backbones import build_backbone
from transferdet.models.detector_sources import read_detector_source
from transferdet.models.detector_transfer import transfer_state
from transferdet.models.detectors import DetectorConfig, build_detector
from transferdet.models.specs import parse_spec
from transferdet.models.torchvision_detectors import MAPPED


def _torchvision_file(name: str, path, eps: float):  # noqa: ANN001, ANN202
    """torchvision's model (random weights, BN statistics drawn) and its state dict saved at ``path``;
    the model's body then as torchvision builds it for trained weights: FrozenBatchNorm, with the
    eps of its COCO_V1 weights."""
    model = random_torchvision_detector(name)
    torch.save(model.state_dict(), path)
    _freeze_norms(model.backbone.body, eps)
    return model.eval()


def _ours(spec: str):  # noqa: ANN202
    source = read_detector_source(parse_spec(spec))
    model = build_detector(build_backbone(source.body), DetectorConfig.from_record(source.record))
    report = transfer_state(model, source.state, source.origin, (source.classes, source.classes))
    return model.eval(), source, report


@pytest.mark.parametrize("name", list(MAPPED))
def test_same_boxes_and_scores_as_torchvision_on_real_images(name, tmp_path, bccd):
    eps = MAPPED[name][1]
    theirs = _torchvision_file(name, tmp_path / f"{name}.pth", eps)
    ours, source, report = _ours(f"torchvision:{name}@{tmp_path / name}.pth")
    for model in (theirs, ours):  # compare every box, not only those above the threshold
        getattr(model, "roi_heads", model).score_thresh = 0.0
        model.transform.min_size, model.transform.max_size = (480,), 640  # both alike; 800 px costs the suite more
    class_specific = [k for k in ours.state_dict() if k.startswith(tuple(report.reinitialised))]
    assert report.total == sum(1 for k in ours.state_dict() if not k.endswith("num_batches_tracked"))
    assert report.transferred == report.total - len(class_specific) and not report.left
    assert len(source.classes) in (90, 91) and "person" in source.classes
    images = _images(bccd)
    with torch.no_grad():
        expected, got = theirs(images), ours(images)
    for a, b in zip(expected, got, strict=True):
        assert a["boxes"].shape == b["boxes"].shape and len(a["boxes"]) > 0
        torch.testing.assert_close(b["boxes"], a["boxes"], atol=1e-4, rtol=0)
        torch.testing.assert_close(b["scores"], a["scores"], atol=1e-4, rtol=0)
        assert torch.equal(b["labels"], a["labels"])  # the same numbering (background first where softmax)


def test_legacy_key_names_load_the_same(tmp_path):
    _torchvision_file("fasterrcnn_resnet50_fpn", tmp_path / "new.pth", 0.0)
    state = torch.load(tmp_path / "new.pth", weights_only=True)
    legacy = {}
    for key, value in state.items():  # FPN and RPN blocks as torchvision wrote them before version 2
        key = re.sub(r"(fpn\.(inner|layer)_blocks\.\d+)\.0\.", r"\1.", key)
        legacy[key.replace("rpn.head.conv.0.0.", "rpn.head.conv.")] = value
    assert "rpn.head.conv.weight" in legacy and "backbone.fpn.inner_blocks.0.weight" in legacy
    torch.save(legacy, tmp_path / "legacy.pth")
    a = read_detector_source(parse_spec(f"torchvision:fasterrcnn_resnet50_fpn@{tmp_path / 'new.pth'}")).state
    b = read_detector_source(parse_spec(f"torchvision:fasterrcnn_resnet50_fpn@{tmp_path / 'legacy.pth'}")).state
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_coco_names_copy_the_rows_of_a_matching_class(tmp_path):
    _torchvision_file("fasterrcnn_resnet50_fpn", tmp_path / "f.pth", 0.0)
    source = read_detector_source(parse_spec(f"torchvision:fasterrcnn_resnet50_fpn@{tmp_path / 'f.pth'}"))
    config = DetectorConfig.from_record({**source.record, "num_classes": 2})
    model = build_detector(build_backbone(source.body), config)
    report = transfer_state(model, source.state, source.origin, (["Person", "wbc"], source.classes))
    person = 1 + source.classes.index("person")  # torchvision's row (background first)
    weight = model.state_dict()["roi_heads.box_predictor.cls_score.weight"]
    assert torch.equal(weight[1], source.state["roi_heads.box_predictor.cls_score.weight"][person])
    boxes, stored = (s["roi_heads.box_predictor.bbox_pred.weight"] for s in (model.state_dict(), source.state))
    assert torch.equal(boxes[4:8], stored[4 * person : 4 * person + 4])
    assert "90 -> 2 classes, 1 row(s) copied: Person" in report.line()


def test_a_fine_tune_from_a_torchvision_detector_carries_the_class_agnostic_tensors(tmp_path, bccd, cli):
    from transferdet.data import formats
    from transferdet.train.assemble import build_model
    from transferdet.train.job import TrainJob
    from transferdet.train.recipes import load_recipe

    _torchvision_file("fcos_resnet50_fpn", tmp_path / "fcos.pth", 1e-5)
    spec = f"torchvision:fcos_resnet50_fpn@{tmp_path / 'fcos.pth'}"
    dataset = formats.read(bccd)
    recipe = load_recipe("quick", ["min_size=[128]", "max_size=128"])
    model = build_model(TrainJob(bccd, spec, "fcos", recipe, tmp_path / "x"), dataset, dataset.records("train"))
    source, state = read_detector_source(parse_spec(spec)).state, model.state_dict()
    agnostic = [k for k in source if "cls_logits" not in k]
    assert len(agnostic) > 300 and all(torch.equal(state[k], source[k]) for k in agnostic)
    assert state["head.classification_head.cls_logits.weight"].shape[0] == len(dataset.classes)
    out = tmp_path / "run"
    sizes = ["--set", "min_size=[128]", "--set", "max_size=128"]
    result = cli("train", "--data", bccd, "--backbone", spec, "--out", out, "--set", "iterations=2",
                 "--set", "batch_size=1", *sizes, "--device", "cpu")  # fmt: skip
    assert result.code == 0, result.err
    assert "re-initialised head.classification_head.cls_logits (91 -> 3 classes, no row copied)" in result.out


def test_keypoint_rcnn_and_a_foreign_file_are_one_line(tmp_path):
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "x.pth")
    with pytest.raises(TransferdetError, match="keypointrcnn_resnet50_fpn is not a detector source"):
        read_detector_source(parse_spec(f"torchvision:keypointrcnn_resnet50_fpn@{tmp_path / 'x.pth'}"))
    with pytest.raises(TransferdetError, match="x.pth: not a torchvision fasterrcnn_resnet50_fpn state dict"):
        read_detector_source(parse_spec(f"torchvision:fasterrcnn_resnet50_fpn@{tmp_path / 'x.pth'}"))


def test_zoo_inspect_shows_a_detectors_parts_classes_and_what_transfers(tmp_path, cli):
    _torchvision_file("retinanet_resnet50_fpn", tmp_path / "r.pth", 0.0)
    result = cli("zoo", "inspect", f"torchvision:retinanet_resnet50_fpn@{tmp_path / 'r.pth'}", "--json")
    assert result.code == 0, result.err
    summary = result.json()
    assert summary["detector"] == "retinanet" and summary["classes"] == 91 and "person" in summary["class_names"]
    assert set(summary["parts"]) == {"backbone", "fpn", "head"}
    assert summary["class_specific"] == ["head.classification_head.cls_logits"]
    assert summary["transfers_whole"] == summary["tensors"] - 2
    shown = cli("zoo", "inspect", f"torchvision:retinanet_resnet50_fpn@{tmp_path / 'r.pth'}")
    assert "a retinanet detector" in shown.out and "whole transfer carries" in shown.out


def test_zoo_list_shows_the_detection_builders(cli):
    result = cli("zoo", "list", "torchvision:*rcnn*")
    assert "torchvision:fasterrcnn_resnet50_fpn  (detector, @FILE: whole transfer onto faster_rcnn_fpn)" in result.out
    assert "torchvision:fasterrcnn_resnet50_fpn_v2  (detector, @FILE: whole transfer, as torchvision builds it" in (
        result.out
    )


def test_rank_reads_a_torchvision_detector_on_its_body_and_its_taps(tmp_path, bccd, cli):
    _torchvision_file("fcos_resnet50_fpn", tmp_path / "fcos.pth", 1e-5)
    detector = f"torchvision:fcos_resnet50_fpn@{tmp_path / 'fcos.pth'}"
    models, small = f"timm:resnet18@random,{detector}", ["--max-images", "6", "--image-size", "128", "--device", "cpu"]
    result = cli("rank", "--data", bccd, "--models", models, "--layer", "c5,fpn_ms,cls_tower",
                 "--metrics", "logme,model_size", "--json", *small)  # fmt: skip
    assert result.code == 0, result.err
    rows = result.json()
    assert {r["model"] for r in rows if r["layer"] == "cls_tower"} == {detector}
    assert {r["model"] for r in rows if r["layer"] == "c5"} == {"timm:resnet18@random", detector}
    size = next(r["score"] for r in rows if r["model"] == detector and r["metric"] == "model_size")
    assert size == sum(p.numel() for p in torchvision.models.resnet50().parameters()) - 2048 * 1000 - 1000  # its body
