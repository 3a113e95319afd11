"""Checkpoints in every common layout load onto the architecture; bad ones fail naming the keys."""

from __future__ import annotations

import argparse
import pickle

import numpy as np
import pytest
import timm
import torch
from safetensors.torch import save_file

from transferdet.errors import TransferdetError
from transferdet.models.backbones import build_backbone, matched_weights
from transferdet.models.detectron2_names import bgr255_conv_to_rgb, resnet_to_detectron2


@pytest.fixture(scope="module")
def resnet_state():
    torch.manual_seed(7)
    model = timm.create_model("resnet18")
    # make BN statistics non-trivial so that a wrongly loaded buffer shows
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return {k: v.clone() for k, v in model.state_dict().items()}


def prefixed(state, prefix):
    return {prefix + k: v for k, v in state.items()}


def mlp_head(prefix):
    return {f"{prefix}fc.0.weight": torch.zeros(2048, 512), f"{prefix}fc.2.weight": torch.zeros(128, 2048)}


def without_fc(state):
    return {k: v for k, v in state.items() if not k.startswith("fc.")}


LAYOUTS = {
    "plain": lambda s: s,
    "state_dict": lambda s: {"state_dict": s, "epoch": 3},
    "model": lambda s: {"model": s, "optimizer": {"lr": 0.1}},
    "model_ema": lambda s: {"model_ema": s},
    "teacher": lambda s: {"teacher": s},
    "student": lambda s: {"student": s},
    "module": lambda s: {"module": s},
    "moco_v1_v2": lambda s: {
        "epoch": 200,
        "arch": "resnet18",
        "args": argparse.Namespace(lr=0.03, moco_k=65536),
        "state_dict": {
            **prefixed(without_fc(s), "module.encoder_q."),
            **mlp_head("module.encoder_q."),
            **prefixed(s, "module.encoder_k."),
            "module.queue": torch.zeros(128, 16),
            "module.queue_ptr": torch.zeros(1, dtype=torch.long),
        },
    },
    "moco_v3": lambda s: {
        "state_dict": {
            **prefixed(without_fc(s), "module.base_encoder."),
            **prefixed(s, "module.momentum_encoder."),
            "module.predictor.0.weight": torch.zeros(4096, 256),
        }
    },
    "pycontrast": lambda s: {"model": prefixed(s, "module.encoder."), "opt": {}},
    "pycontrast_ema": lambda s: {"model_ema": prefixed(s, "encoder.")},
    "densecl_mmcv": lambda s: {
        "meta": {"epoch": 200},
        "state_dict": {**prefixed(without_fc(s), "backbone."), "neck.mlp.0.weight": torch.zeros(2048, 512)},
    },
    "dino": lambda s: {
        "teacher": {**prefixed(without_fc(s), "backbone."), "head.mlp.0.weight": torch.zeros(2048, 512)},
        "student": {**prefixed(without_fc(s), "module.backbone."), "module.head.mlp.0.weight": torch.zeros(1, 1)},
        "epoch": 100,
    },
}


def features_of(backbone, seed=0):
    torch.manual_seed(seed)
    with torch.no_grad():
        return backbone.eval()(torch.randn(2, 3, 64, 64))


def assert_same_features(a, b):
    fa, fb = features_of(a), features_of(b)
    assert fa.keys() == fb.keys()
    for key in fa:
        torch.testing.assert_close(fa[key], fb[key], rtol=0, atol=0)


@pytest.fixture(scope="module")
def reference(resnet_state, tmp_path_factory):
    path = tmp_path_factory.mktemp("ref") / "plain.pth"
    torch.save(resnet_state, path)
    backbone = build_backbone(f"timm:resnet18@{path}")
    assert backbone.load_report.clean
    return backbone


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_layout_loads_with_no_missing_key(layout, resnet_state, reference, tmp_path):
    path = tmp_path / "checkpoint.pth.tar"
    torch.save(LAYOUTS[layout](resnet_state), path)
    backbone = build_backbone(f"timm:resnet18@{path}")
    report = backbone.load_report
    assert report.missing == [] and report.mismatched == []
    assert len(report.matched) >= len([k for k in resnet_state if "num_batches" not in k and "fc." not in k])
    assert_same_features(backbone, reference)


def test_safetensors(resnet_state, reference, tmp_path):
    path = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in resnet_state.items()}, str(path))
    backbone = build_backbone(f"timm:resnet18@{path}")
    assert backbone.load_report.clean and backbone.load_report.layout.startswith("safetensors")
    assert_same_features(backbone, reference)


def test_renamed_key_fails_naming_it(resnet_state, tmp_path):
    broken = dict(resnet_state)
    broken["layer2.0.conv1_renamed.weight"] = broken.pop("layer2.0.conv1.weight")
    path = tmp_path / "broken.pth"
    torch.save({"state_dict": broken}, path)
    with pytest.raises(TransferdetError) as error:
        build_backbone(f"timm:resnet18@{path}")
    message = str(error.value)
    assert "1 backbone weight(s) not in the checkpoint: layer2.0.conv1.weight" in message
    assert "layer2.0.conv1_renamed.weight" in message and "--non-strict" in message
    loose = build_backbone(f"timm:resnet18@{path}", strict=False)
    assert loose.load_report.missing == ["layer2.0.conv1.weight"]


def test_shared_mobilenet_loads_strictly_into_torchvision_and_timm(mobilenet_weights):
    MOBILENET = mobilenet_weights  # noqa: N806
    state = torch.load(MOBILENET, map_location="cpu", weights_only=True)
    tv = build_backbone(f"torchvision:mobilenet_v2@{MOBILENET}")
    assert tv.load_report.clean and tv.load_report.unused == []
    assert len(tv.load_report.matched) == len(state)
    torch.testing.assert_close(tv.stages["features_0"][0].weight, state["features.0.0.weight"], rtol=0, atol=0)
    # timm names the same network differently: keys are paired in order by shape
    tm = build_backbone(f"timm:mobilenetv2_100@{MOBILENET}")
    assert tm.load_report.clean and "paired in order" in tm.load_report.layout
    a, b = features_of(tv), features_of(tm)
    for key in ("c2", "c3", "c4"):  # timm's c5 stops before the 1x1 conv to 1280 channels
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-4)


def test_detectron2_export_reimports_identical_tensors(cli, resnet_state, tmp_path):
    source = tmp_path / "moco.pth.tar"
    torch.save(LAYOUTS["moco_v1_v2"](resnet_state), source)
    target = tmp_path / "moco_r18.pkl"
    result = cli("zoo", "convert", source, target, "--to", "detectron2", "--arch", "torchvision:resnet18")
    assert result.code == 0, result.err
    with open(target, "rb") as handle:
        content = pickle.load(handle)
    assert content["matching_heuristics"] is True and content["input_format"] == "RGB"
    keys = set(content["model"])
    assert {
        "stem.conv1.weight",
        "stem.conv1.norm.running_var",
        "res2.0.conv1.weight",
        "res2.1.conv2.norm.bias",
        "res3.0.shortcut.weight",
        "res3.0.shortcut.norm.running_mean",
        "res5.1.conv2.weight",
    } <= keys
    assert not any(k.startswith(("layer", "fc", "conv1", "bn1")) for k in keys)
    back, report = matched_weights(f"torchvision:resnet18@{target}")
    assert report.clean
    for key, value in resnet_state.items():
        if resnet_to_detectron2(key) is not None:
            assert torch.equal(back[key], value), key
    assert_same_features(build_backbone(f"timm:resnet18@{target}"), build_backbone(f"timm:resnet18@{source}"))


def test_detectron2_bgr_weights_are_converted_once(resnet_state, tmp_path):
    """MSRA's detectron2 weights expect BGR 0-255 input: the first conv is rewritten for RGB input
    normalised with ImageNet mean/std, which gives the same activations."""
    model = {}
    for key, value in resnet_state.items():
        name = resnet_to_detectron2(key)
        if name is not None:
            model[name] = value.numpy()
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    rgb_conv = resnet_state["conv1.weight"]
    model["stem.conv1.weight"] = (rgb_conv / (255 * std)).flip(1).numpy()  # what an MSRA file holds
    path = tmp_path / "R-18.pkl"
    with open(path, "wb") as handle:
        pickle.dump({"model": model, "__author__": "Detectron"}, handle)
    loaded, _ = matched_weights(f"torchvision:resnet18@{path}")
    torch.testing.assert_close(loaded["conv1.weight"], rgb_conv)
    # and the conversion is the one that maps BGR-255 inputs to normalised RGB ones
    x = torch.rand(1, 3, 8, 8)
    bgr255 = (x * 255 - 255 * torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)).flip(1)
    normalised = (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / std
    w = torch.from_numpy(np.asarray(model["stem.conv1.weight"]))
    torch.testing.assert_close(
        torch.nn.functional.conv2d(bgr255, w), torch.nn.functional.conv2d(normalised, bgr255_conv_to_rgb(w))
    )


def test_not_a_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "notes.pth"
    path.write_text("hello")
    with pytest.raises(TransferdetError, match="notes.pth: cannot load as a PyTorch checkpoint"):
        build_backbone(f"timm:resnet18@{path}")
    with pytest.raises(TransferdetError, match="checkpoint file does not exist"):
        build_backbone(f"timm:resnet18@{tmp_path / 'nope.pth'}")
    with pytest.raises(TransferdetError, match="expected timm:NAME"):
        build_backbone("resnet18")


def test_inspect_cli(cli, resnet_state, tmp_path):
    path = tmp_path / "ok.pth"
    torch.save({"state_dict": prefixed(resnet_state, "module.")}, path)
    result = cli("zoo", "inspect", f"timm:resnet18@{path}", "--json")
    assert result.code == 0, result.err
    info = result.json()
    assert info["checkpoint"]["clean"] and "prefix 'module.'" in info["checkpoint"]["layout"]
    assert info["features"]["c5"] == {"channels": 512, "stride": 32}
    broken = dict(resnet_state)
    del broken["layer4.1.bn2.weight"]
    torch.save(broken, path)
    failed = cli("zoo", "inspect", f"timm:resnet18@{path}")
    assert failed.code == 2 and "layer4.1.bn2.weight" in failed.err


@pytest.mark.parametrize(
    ("query", "momentum"),
    [("module.encoder_q.", "module.encoder_k."), ("module.base_encoder.", "module.momentum_encoder.")],
)
def test_the_query_encoder_is_loaded_when_the_momentum_encoder_differs(
    query, momentum, resnet_state, reference, tmp_path
):
    """MoCo keeps a query and a momentum encoder; the query one is the pretrained backbone, even where
    the momentum encoder's head happens to fit the classifier and the query's (an MLP) does not."""
    drifted = {k: (v + 0.5 if v.is_floating_point() else v) for k, v in resnet_state.items()}
    state = {**prefixed(without_fc(resnet_state), query), **mlp_head(query), **prefixed(drifted, momentum)}
    path = tmp_path / "moco.pth.tar"
    torch.save({"state_dict": state}, path)
    backbone = build_backbone(f"timm:resnet18@{path}")
    assert query in backbone.load_report.layout
    assert_same_features(backbone, reference)
