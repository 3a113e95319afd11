"""detectron2's whole detectors: a checkpoint synthesized here in detectron2's own names and shapes
(R50-FPN Faster R-CNN, Mask R-CNN, RetinaNet; background row last, no background box regression,
size-major anchors) loads as a whole-detector source with every row where it belongs, and
round-trips through ``zoo convert`` to detectron2's layout and back."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
import torchvision

from transferdet.models.detector_sources import read_detector_source
from transferdet.models.detectron2_detectors import anchor_permutation
from transferdet.models.detectron2_names import resnet_to_detectron2
from transferdet.models.specs import parse_spec

C = 80  # detectron2's COCO classes (no background among them)


def _head_shapes(kind: str) -> dict[str, tuple[int, ...]]:
    """detectron2's names and shapes beyond the body, as its R50-FPN configs build them."""
    first = 3 if kind == "retinanet" else 2
    shapes: dict[str, tuple[int, ...]] = {}
    for level, channels in zip(range(first, 6), (256, 512, 1024, 2048)[first - 2 :], strict=True):
        shapes[f"backbone.fpn_lateral{level}.weight"] = (256, channels, 1, 1)
        shapes[f"backbone.fpn_output{level}.weight"] = (256, 256, 3, 3)
        shapes[f"backbone.fpn_lateral{level}.bias"] = shapes[f"backbone.fpn_output{level}.bias"] = (256,)
    if kind == "retinanet":
        shapes |= {"backbone.top_block.p6.weight": (256, 2048, 3, 3), "backbone.top_block.p6.bias": (256,),
                   "backbone.top_block.p7.weight": (256, 256, 3, 3), "backbone.top_block.p7.bias": (256,)}  # fmt: skip
        for tower in ("cls_subnet", "bbox_subnet"):
            for index in (0, 2, 4, 6):
                shapes[f"head.{tower}.{index}.weight"], shapes[f"head.{tower}.{index}.bias"] = (256, 256, 3, 3), (256,)
        return shapes | {"head.cls_score.weight": (9 * C, 256, 3, 3), "head.cls_score.bias": (9 * C,),
                         "head.bbox_pred.weight": (36, 256, 3, 3), "head.bbox_pred.bias": (36,)}  # fmt: skip
    rpn = "proposal_generator.rpn_head."
    shapes |= {rpn + "conv.weight": (256, 256, 3, 3), rpn + "conv.bias": (256,),
               rpn + "objectness_logits.weight": (3, 256, 1, 1), rpn + "objectness_logits.bias": (3,),
               rpn + "anchor_deltas.weight": (12, 256, 1, 1), rpn + "anchor_deltas.bias": (12,),
               "roi_heads.box_head.fc1.weight": (1024, 12544), "roi_heads.box_head.fc1.bias": (1024,),
               "roi_heads.box_head.fc2.weight": (1024, 1024), "roi_heads.box_head.fc2.bias": (1024,),
               "roi_heads.box_predictor.cls_score.weight": (C + 1, 1024),
               "roi_heads.box_predictor.cls_score.bias": (C + 1,),
               "roi_heads.box_predictor.bbox_pred.weight": (4 * C, 1024),
               "roi_heads.box_predictor.bbox_pred.bias": (4 * C,)}  # fmt: skip
    if kind == "mask":
        for index in (1, 2, 3, 4):
            shapes[f"roi_heads.mask_head.mask_fcn{index}.weight"] = (256, 256, 3, 3)
            shapes[f"roi_heads.mask_head.mask_fcn{index}.bias"] = (256,)
        shapes |= {"roi_heads.mask_head.deconv.weight": (256, 256, 2, 2), "roi_heads.mask_head.deconv.bias": (256,),
                   "roi_heads.mask_head.predictor.weight": (C, 256, 1, 1),
                   "roi_heads.mask_head.predictor.bias": (C,)}  # fmt: skip
    return shapes


def _detectron2_file(kind: str, path, resnet: str = "resnet50") -> dict[str, np.ndarray]:  # noqa: ANN001
    """A detectron2 model-zoo style .pkl: random arrays under detectron2's names (RGB input noted,
    so that the first conv is taken as it is), the body a ``resnet``."""
    rng = np.random.default_rng(0)
    model = {}
    for key, value in torchvision.models.get_model(resnet).state_dict().items():
        name = resnet_to_detectron2(key)
        if name is not None:
            model[f"backbone.bottom_up.{name}"] = rng.standard_normal(tuple(value.shape)).astype(np.float32)
    for key, shape in _head_shapes(kind).items():
        model[key] = rng.standard_normal(shape).astype(np.float32)
    content = {"model": model, "__author__": "Detectron2 Model Zoo", "input_format": "RGB"}
    path.write_bytes(pickle.dumps(content, protocol=2))
    return model


BUILDERS = {"faster": "fasterrcnn_resnet50_fpn", "mask": "maskrcnn_resnet50_fpn", "retinanet": "retinanet_resnet50_fpn"}


@pytest.mark.parametrize("kind", list(BUILDERS))
def test_a_detectron2_checkpoint_loads_and_round_trips(kind, tmp_path, cli):
    d2 = _detectron2_file(kind, tmp_path / "model_final.pkl")
    spec = f"torchvision:{BUILDERS[kind]}@{tmp_path / 'model_final.pkl'}"
    source = read_detector_source(parse_spec(spec))
    state = source.state
    assert len(source.classes) == C and source.classes[0] == "person"
    if kind != "retinanet":
        score = torch.as_tensor(d2["roi_heads.box_predictor.cls_score.weight"])
        ours = state["roi_heads.box_predictor.cls_score.weight"]
        assert torch.equal(ours[0], score[C]) and torch.equal(ours[1:], score[:C])  # background last -> first
        boxes = state["roi_heads.box_predictor.bbox_pred.weight"]
        assert torch.equal(boxes[:4], torch.zeros(4, 1024))  # no regression for the background
        assert torch.equal(boxes[4:8], torch.as_tensor(d2["roi_heads.box_predictor.bbox_pred.weight"][:4]))
        assert torch.equal(state["roi_heads.box_head.fc7.weight"], torch.as_tensor(d2["roi_heads.box_head.fc2.weight"]))
        assert torch.equal(
            state["backbone.fpn.inner_blocks.0.0.weight"], torch.as_tensor(d2["backbone.fpn_lateral2.weight"])
        )
    else:
        logits, given = (
            state["head.classification_head.cls_logits.weight"],
            torch.as_tensor(d2["head.cls_score.weight"]),
        )
        for ours_anchor, theirs_anchor in enumerate(anchor_permutation()):
            assert torch.equal(
                logits[ours_anchor * C : (ours_anchor + 1) * C], given[theirs_anchor * C : (theirs_anchor + 1) * C]
            )
    from transferdet.models.backbones import build_backbone
    from transferdet.models.detector_transfer import transfer_state
    from transferdet.models.detectors import DetectorConfig, build_detector

    model = build_detector(build_backbone(source.body), DetectorConfig.from_record(source.record))
    report = transfer_state(model, state, source.origin, (source.classes, source.classes))
    # detectron2's RetinaNet makes P6 from C5 (2048 channels), torchvision's v1 from P5: left, with its shapes
    expected = (
        ["backbone.fpn.extra_blocks.p6.weight ((256, 2048, 3, 3) vs (256, 256, 3, 3))"] if kind == "retinanet" else []
    )
    assert report.left == expected and f"{C} -> {C} classes, {C} row(s) copied" in report.line()
    out = tmp_path / "back.pkl"
    result = cli("zoo", "convert", spec, out, "--to", "detectron2")
    assert result.code == 0, result.err
    with open(out, "rb") as handle:
        back = pickle.load(handle)["model"]  # our own file, just written
    assert set(back) == set(d2)
    assert all(np.array_equal(back[k], d2[k]) for k in d2)


def test_the_anchor_permutation_pairs_equal_anchors():
    """torchvision's cell anchors (ratio-major) permuted are detectron2's (size-major, from its
    documented rule: for each size, for each ratio, w = sqrt(size^2 / ratio), h = ratio * w)."""
    from torchvision.models.detection.anchor_utils import AnchorGenerator

    sizes, ratios = (32.0, 32 * 2 ** (1 / 3), 32 * 2 ** (2 / 3)), (0.5, 1.0, 2.0)
    ours = AnchorGenerator((sizes,), (ratios,)).cell_anchors[0]
    theirs = []
    for size in sizes:
        for ratio in ratios:
            w = (size**2 / ratio) ** 0.5
            theirs.append([-w / 2, -ratio * w / 2, w / 2, ratio * w / 2])
    theirs = torch.tensor(theirs)
    for ours_index, theirs_index in enumerate(anchor_permutation()):
        torch.testing.assert_close(ours[ours_index], theirs[theirs_index], atol=0.51, rtol=0)  # torchvision rounds


def test_an_mmdetection_checkpoint_carries_its_body_and_fpn_and_says_what_it_left(tmp_path, cli):
    """MMDetection's layout (meta + state_dict; torchvision-named ResNet under ``backbone.``, the
    FPN as ``neck.lateral_convs`` / ``neck.fpn_convs``): body and FPN carried, RPN and heads left."""
    from transferdet.models.backbones import build_backbone
    from transferdet.models.detector_transfer import transfer_state
    from transferdet.models.detectors import DetectorConfig, build_detector

    torch.manual_seed(0)
    state = {
        f"backbone.{k}": v for k, v in torchvision.models.resnet50().state_dict().items() if not k.startswith("fc.")
    }
    for i, channels in enumerate((256, 512, 1024, 2048)):
        state[f"neck.lateral_convs.{i}.conv.weight"] = torch.randn(256, channels, 1, 1)
        state[f"neck.fpn_convs.{i}.conv.weight"] = torch.randn(256, 256, 3, 3)
        state[f"neck.lateral_convs.{i}.conv.bias"] = state[f"neck.fpn_convs.{i}.conv.bias"] = torch.randn(256)
    state |= {
        "rpn_head.rpn_conv.weight": torch.randn(256, 256, 3, 3),
        "roi_head.bbox_head.fc_cls.weight": torch.randn(3, 1024),
    }
    torch.save(
        {"meta": {"CLASSES": ("person", "car"), "mmdet_version": "2.28.2"}, "state_dict": state}, tmp_path / "m.pth"
    )
    spec = f"torchvision:fasterrcnn_resnet50_fpn@{tmp_path / 'm.pth'}"
    source = read_detector_source(parse_spec(spec))
    assert source.classes == ["person", "car"]
    model = build_detector(build_backbone(source.body), DetectorConfig.from_record(source.record))
    report = transfer_state(model, source.state, source.origin, (["Car"], source.classes))
    assert report.by_part["fpn"] == 16 and report.by_part["backbone"] == 265
    assert set(report.by_part) == {"backbone", "fpn"}
    assert any(left.startswith("rpn.head.conv.0.0.weight (not in the source)") for left in report.left)
    assert "left " in report.line()
    inspected = cli("zoo", "inspect", spec, "--json")
    assert inspected.code == 0 and inspected.json()["parts"] == {"backbone": 265, "fpn": 16}


def test_an_r101_detectron2_detector_is_built_over_resnet101_and_reloads(tmp_path, bccd, cli):
    """detectron2's zoo holds R101-FPN detectors too: the body's depth is the file's (23 blocks in
    res4), so the detector is built over torchvision's resnet101, every body tensor carried; a run
    trained from it rebuilds that body from its checkpoint, and rank counts that body's parameters."""
    from transferdet.models.backbones import build_backbone
    from transferdet.models.torchvision_detectors import body_arch

    d2 = _detectron2_file("faster", tmp_path / "r101.pkl", "resnet101")
    spec = f"torchvision:fasterrcnn_resnet50_fpn@{tmp_path / 'r101.pkl'}"
    source = read_detector_source(parse_spec(spec))
    assert source.body == "torchvision:resnet101@random"
    body_tensors = sum(k.startswith("backbone.bottom_up.") for k in d2)
    assert sum(k.startswith("backbone.body.") for k in source.state) == body_tensors
    with torch.device("meta"):  # a run's checkpoint under transferdet's names: what load_detector reads
        trained = {f"backbone.body.{k}": v for k, v in build_backbone(source.body).state_dict().items()}
    assert body_arch("torchvision:fasterrcnn_resnet50_fpn", trained) == "torchvision:resnet101"
    ranked = cli("rank", "--data", bccd, "--models", spec, "--layer", "c5", "--metrics", "logme,model_size",
                 "--max-images", "2", "--image-size", "96", "--device", "cpu", "--json")  # fmt: skip
    assert ranked.code == 0, ranked.err
    body = sum(p.numel() for n, p in torchvision.models.resnet101().named_parameters() if not n.startswith("fc."))
    assert [r["score"] for r in ranked.json() if r["metric"] == "model_size"] == [body]
