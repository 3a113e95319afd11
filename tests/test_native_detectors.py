"""torchvision's detection builders that transferdet's families do not reproduce (the v2 heads,
MobileNetV3-FPN and its 320 variant, SSD300-VGG16, SSDlite320), used as torchvision builds them: a
file in torchvision's layout (made here by the builder, random weights, the body's norms frozen as
torchvision freezes them for its COCO weights) gives torchvision's own boxes and scores on real
images; with a target's classes it fine-tunes, carrying every class-agnostic tensor."""

from __future__ import annotations

import pytest
import torch

from detector_kit import bccd_images as _images
from detector_kit import freeze_norms as _freeze_norms
from detector_kit import random_torchvision_detector
from transferdet.models.detector_sources import read_detector_source, source_kind
from transferdet.models.detector_transfer import class_layer, transfer_state
from transferdet.models.detectors import DetectorConfig, build_detector
from transferdet.models.native_detectors import NATIVE, native_body
from transferdet.models.specs import parse_spec


def _native_file(name: str, path):  # noqa: ANN001, ANN202
    """torchvision's model of ``name`` (random weights, BN statistics drawn), its body's norms frozen
    as its builder does for COCO weights (FrozenBatchNorm, eps 1e-5; SSDlite keeps its BN), saved at
    ``path`` with those keys."""
    model = random_torchvision_detector(name)
    if not name.startswith(("ssd",)):
        _freeze_norms(native_body(model), 1e-5)
    torch.save(model.state_dict(), path)
    return model.eval()


def _ours(spec: str):  # noqa: ANN202
    source = read_detector_source(parse_spec(spec))
    model = build_detector(None, DetectorConfig.from_record(source.record))
    report = transfer_state(model, source.state, source.origin, (source.classes, source.classes))
    return model.eval(), source, report


@pytest.mark.parametrize("name", list(NATIVE))
def test_same_boxes_and_scores_as_torchvision_on_real_images(name, tmp_path, bccd):
    theirs = _native_file(name, tmp_path / f"{name}.pth")
    spec = f"torchvision:{name}@{tmp_path / name}.pth"
    ours, source, report = _ours(spec)
    assert source_kind(spec) == NATIVE[name][0] == ours.detector_kind
    for model in (theirs, ours):  # every box, not only those above the threshold; R-CNNs at 320-480 px
        getattr(model, "roi_heads", model).score_thresh = 0.0
        if not name.startswith("ssd"):
            model.transform.min_size, model.transform.max_size = (320,), 480
    assert report.transferred == report.total - len([k for k in ours.state_dict() if class_layer(ours.class_layout, k)])
    assert not report.left and "person" in source.classes
    with torch.no_grad():
        expected, got = theirs(_images(bccd)), ours(_images(bccd))
    for a, b in zip(expected, got, strict=True):
        assert a["boxes"].shape == b["boxes"].shape and len(a["boxes"]) > 0
        torch.testing.assert_close(b["boxes"], a["boxes"], atol=1e-4, rtol=0)
        torch.testing.assert_close(b["scores"], a["scores"], atol=1e-4, rtol=0)
        assert torch.equal(b["labels"], a["labels"])


def _two_iterations(model, job, records) -> list[float]:  # noqa: ANN001
    from transferdet.train.assemble import build_optimizer, training_loader

    optimizer, losses = build_optimizer(job.recipe, model, 1), []
    model.train()
    for images, targets in training_loader(job, model, records, 0, 2, 0, 1):
        loss = sum(model(images, targets).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("name", list(NATIVE))
def test_a_fine_tune_carries_every_class_agnostic_tensor(name, tmp_path, bccd):
    from transferdet.data import formats
    from transferdet.train.assemble import build_model
    from transferdet.train.job import TrainJob
    from transferdet.train.recipes import load_recipe

    _native_file(name, tmp_path / "d.pth")
    spec = f"torchvision:{name}@{tmp_path / 'd.pth'}"
    dataset = formats.read(bccd)
    # batch 2 for SSDlite's BN on 1 x 1 maps; 64 RoIs per image (torchvision's 512 make the v2 heads' steps 20 s)
    batch = 2 if name.startswith("ssdlite") else 1
    sizes = ["min_size=[96]", "max_size=96", f"batch_size={batch}", "num_workers=0", "rois_per_image=64"]
    recipe = load_recipe("quick", sizes)
    job = TrainJob(bccd, spec, NATIVE[name][0], recipe, tmp_path / "x")
    records = dataset.records("train")
    model = build_model(job, dataset, records)
    if "rcnn" in name:  # the recipe's sampling, not the source's (a file has none)
        assert model.roi_heads.fg_bg_sampler.batch_size_per_image == 64
    source, state = read_detector_source(parse_spec(spec)).state, model.state_dict()
    agnostic = [k for k in source if class_layer(model.class_layout, k) is None]
    assert len(agnostic) > 50 and all(torch.equal(state[k], source[k]) for k in agnostic)
    specific = [k for k in state if class_layer(model.class_layout, k) is not None]
    assert specific and all(state[k].shape != source[k].shape for k in specific)  # 3 (+ background) classes
    before = {k: v.clone() for k, v in model.state_dict().items()}
    losses = _two_iterations(model, job, records)
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items() if k in agnostic)


def test_train_from_ssdlite_prints_the_transfer_and_reloads_for_evaluation(tmp_path, bccd, cli):
    from transferdet.run_detector import load_detector
    from transferdet.runs import RunDir

    _native_file("ssdlite320_mobilenet_v3_large", tmp_path / "s.pth")
    spec, out = f"torchvision:ssdlite320_mobilenet_v3_large@{tmp_path / 's.pth'}", tmp_path / "run"
    result = cli("train", "--data", bccd, "--backbone", spec, "--out", out, "--set", "iterations=2",
                 "--set", "batch_size=2", "--device", "cpu")  # fmt: skip
    assert result.code == 0, result.err
    assert "re-initialised head.classification_head.module_list.0.1" in result.out
    assert "(90 -> 3 classes, no row copied)" in result.out  # COCO's 90 (N/A among them), background apart
    manifest = RunDir(out).manifest()
    assert manifest["detector"]["builder"] == "ssdlite320_mobilenet_v3_large"
    assert manifest["job"]["transfer_report"]["left"] == []
    model, classes = load_detector(RunDir(out))
    assert classes == ["Platelets", "RBC", "WBC"] and model.class_layout == "ssdlite"
    run = f"torchvision:ssdlite320_mobilenet_v3_large@{out}"  # rank reads the run on its own taps too
    ranked = cli("rank", "--data", bccd, "--models", run, "--layer", "c5,p6", "--metrics", "logme", "--json",
                 "--max-images", "4", "--image-size", "128", "--device", "cpu")  # fmt: skip
    assert ranked.code == 0, ranked.err
    assert {r["layer"] for r in ranked.json()} == {"c5", "p6"}


def test_zoo_list_names_how_each_builder_transfers(cli):
    result = cli("zoo", "list", "torchvision:*")
    assert "torchvision:ssd300_vgg16  (detector, @FILE: whole transfer, as torchvision builds it (ssd heads))" in (
        result.out
    )
    assert "torchvision:keypointrcnn_resnet50_fpn  (detector, @FILE: not a source" in result.out


def test_ssdlite_with_one_image_per_batch_is_one_line(tmp_path, bccd, cli):
    _native_file("ssdlite320_mobilenet_v3_large", tmp_path / "s.pth")
    spec = f"torchvision:ssdlite320_mobilenet_v3_large@{tmp_path / 's.pth'}"
    result = cli("train", "--data", bccd, "--backbone", spec, "--out", tmp_path / "run", "--set", "iterations=1",
                 "--set", "batch_size=1", "--device", "cpu")  # fmt: skip
    errors = [line for line in result.err.splitlines() if line.startswith("error:")]
    assert result.code == 2 and "Traceback" not in result.err and len(errors) == 1
    assert "needs batch_size 2 or more" in errors[0] and not (tmp_path / "run" / "checkpoint.pt").exists()
