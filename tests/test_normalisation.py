"""Input normalisation is part of a checkpoint: a sidecar or the checkpoint's own entries state it,
and with the stated one the real EfficientNet-Lite weights see the inputs they were trained on."""

from __future__ import annotations

import json
import os

import pytest
import timm
import torch
import torchvision.transforms.v2.functional as F
from PIL import Image

from conftest import SHARED, require_shared
from transferdet.data import formats
from transferdet.errors import TransferdetError
from transferdet.models.backbones import build_backbone
from transferdet.models.normalisation import IMAGENET_MEAN, IMAGENET_STD
from transferdet.transfer.rank import RankSettings, rank

LITE0 = SHARED / "weights" / "efficientnet-lite0-57934424.pth"
HARDHAT = SHARED / "datasets" / "hardhat" / "dataset"
SIGNED = {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}  # inputs in [-1, 1], as the Lite card states


def _first_norm_mismatch(backbone, images: torch.Tensor) -> float:
    """Mean KL divergence, over the channels, from the first BatchNorm's running statistics (what
    the weights saw in training) to the statistics of its input on ``images`` normalised as the
    backbone says: small when the normalisation is the one the weights were trained with."""
    norm = next(m for m in backbone.modules() if isinstance(m, torch.nn.BatchNorm2d))
    seen = {}
    hook = norm.register_forward_hook(lambda module, inputs, output: seen.setdefault("x", inputs[0]))
    mean, std = torch.tensor(backbone.mean).view(1, 3, 1, 1), torch.tensor(backbone.std).view(1, 3, 1, 1)
    with torch.no_grad():
        backbone.eval()((images - mean) / std)
    hook.remove()
    x = seen["x"]
    keep = norm.running_var > 1e-4  # channels the training data kept alive
    m, v = x.mean(dim=(0, 2, 3))[keep], x.var(dim=(0, 2, 3))[keep]
    rm, rv = norm.running_mean[keep], norm.running_var[keep]
    return float((0.5 * ((rv / v).log() + (v + (m - rm) ** 2) / rv - 1)).mean())


@pytest.fixture(scope="module")
def photos() -> torch.Tensor:
    records = formats.read(require_shared(HARDHAT)).records("train")[:8]
    return torch.stack(
        [F.resize(F.pil_to_tensor(Image.open(r.path).convert("RGB")), [224, 224]).float() / 255 for r in records]
    )


def test_lite_weights_see_their_inputs_only_with_the_stated_normalisation(tmp_path, photos):
    checkpoint = tmp_path / "lite0.pth"
    os.symlink(require_shared(LITE0), checkpoint)
    default = build_backbone(f"timm:efficientnet_lite0@{checkpoint}")
    assert (default.mean, default.std) == (IMAGENET_MEAN, IMAGENET_STD)
    (tmp_path / "lite0.pth.json").write_text(json.dumps({"model": "EfficientNet-Lite0", **SIGNED}))
    stated = build_backbone(f"timm:efficientnet_lite0@{checkpoint}")
    assert stated.mean == stated.std == (0.5, 0.5, 0.5) and "lite0.pth.json" in stated.normalisation_source
    # measured: 1.36 with ImageNet's mean/std, 0.018 with [-1, 1]
    assert _first_norm_mismatch(stated, photos) < 0.1 < 1.0 < _first_norm_mismatch(default, photos)


def test_the_check_prefers_imagenet_statistics_for_imagenet_weights(mobilenet_weights, photos):
    # the control: torchvision's MobileNetV2 card says ImageNet mean/std, and the check agrees
    backbone = build_backbone(f"torchvision:mobilenet_v2@{mobilenet_weights}")
    right = _first_norm_mismatch(backbone, photos)
    backbone.mean, backbone.std = (0.5,) * 3, (0.5,) * 3
    assert right < 0.5 * _first_norm_mismatch(backbone, photos)  # measured: 0.26 against 0.79


def _small_checkpoint(path, **entries) -> None:
    torch.manual_seed(0)
    torch.save({"state_dict": timm.create_model("resnet10t").state_dict(), **entries}, path)


def test_a_dict_checkpoint_states_its_own_normalisation_and_the_sidecar_wins(tmp_path):
    checkpoint = tmp_path / "net.pth"
    _small_checkpoint(checkpoint, mean=torch.tensor([0.1, 0.2, 0.3]), std=[0.9, 0.8, 0.7])
    backbone = build_backbone(f"timm:resnet10t@{checkpoint}")
    assert backbone.mean == pytest.approx((0.1, 0.2, 0.3)) and backbone.std == pytest.approx((0.9, 0.8, 0.7))
    (tmp_path / "net.pth.json").write_text(json.dumps(SIGNED))
    assert build_backbone(f"timm:resnet10t@{checkpoint}").mean == (0.5, 0.5, 0.5)


@pytest.mark.parametrize(
    ("sidecar", "message"),
    [
        ({"mean": [0.5, 0.5], "std": [0.5, 0.5, 0.5]}, r"net.pth.json: mean must be 3 numbers \(R, G, B\)"),
        ({"mean": [0.5, 0.5, 0.5], "std": [0.5, 0, 0.5]}, "std must be 3 positive numbers"),
        ({"mean": [0.5, 0.5, 0.5]}, "states mean but not std"),
    ],
)
def test_a_bad_sidecar_is_a_one_line_error_naming_it(tmp_path, sidecar, message):
    checkpoint = tmp_path / "net.pth"
    _small_checkpoint(checkpoint)
    (tmp_path / "net.pth.json").write_text(json.dumps(sidecar))
    with pytest.raises(TransferdetError, match=message):
        build_backbone(f"timm:resnet10t@{checkpoint}")


def test_ranking_follows_the_sidecar(synthetic, tmp_path):
    checkpoint = tmp_path / "net.pth"
    _small_checkpoint(checkpoint)
    settings = RankSettings(layers="c5", image_size=64, max_images=4, device="cpu")  # one layer: one cache file
    spec = f"timm:resnet10t@{checkpoint}"
    before = rank(synthetic, [spec], ["logme"], settings=settings, cache_dir=tmp_path / "cache")
    (tmp_path / "net.pth.json").write_text(json.dumps(SIGNED))
    after = rank(synthetic, [spec], ["logme"], settings=settings, cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2  # not served the stale features
    assert before[0]["score"] != after[0]["score"]
