"""Ranking's inference copy of a backbone: batch norms folded into convolutions, same maps."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from transferdet.models.backbone import Backbone
from transferdet.models.backbones import build_backbone
from transferdet.models.batchnorm_folding import fold_batch_norms


def _batch_norms(module: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) for m in module.modules())


@pytest.mark.parametrize(
    ("spec", "norms"),
    # ResNet's stem norm is a stage of its own after the conv1 stage: folded across the two stages
    [("torchvision:mobilenet_v2", 52), ("timm:efficientnet_lite0", 48), ("timm:resnet18", 20)],
)
def test_folding_removes_the_batch_norms_and_keeps_every_map(spec, norms):
    # EfficientNet-Lite's are timm's BatchNormAct2d (a batch norm and its ReLU6): the activation stays
    backbone = build_backbone(spec).eval()
    generator = torch.Generator().manual_seed(0)
    for module in backbone.modules():  # statistics far from the identity, so that folding shows
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.copy_(torch.rand(module.num_features, generator=generator) * 2 - 1)
            module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
    images = torch.randn(2, 3, 96, 128, generator=generator)
    with torch.no_grad():
        expected = backbone(images)
        folded = fold_batch_norms(backbone)
        got = folded(images)
    assert _batch_norms(backbone) == norms and _batch_norms(folded) == 0
    assert folded.channels == backbone.channels and folded.mean == backbone.mean
    assert list(got) == list(expected) == ["c1", "c2", "c3", "c4", "c5"]
    for name, value in expected.items():
        assert torch.allclose(got[name], value, rtol=1e-4, atol=1e-5 * float(value.abs().max())), name
    with torch.no_grad():  # the original is left as it was
        assert torch.equal(backbone(images)["c5"], expected["c5"])


class _Branchy(nn.Module):
    """A stage FX cannot trace (its control flow reads a tensor's value)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.norm = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(x)) if x.sum() > 0 else self.conv(x)


def test_a_stage_fx_cannot_trace_is_kept_and_training_mode_is_refused():
    stage = _Branchy()
    backbone = Backbone([("s", stage)], {"s": "c1"}, {"c1": 4}, {"c1": 2})
    with pytest.raises(ValueError, match="eval mode"):
        fold_batch_norms(backbone)
    folded = fold_batch_norms(backbone.eval())
    assert folded.stages["s"] is stage


class _Shared(nn.Module):
    """One batch norm called after two convolutions: folding it into one would change the other."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.norm = nn.Conv2d(3, 4, 1), nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.a(x)) + self.norm(self.b(x))


def test_a_batch_norm_called_twice_is_left_alone():
    stage = _Shared().eval()
    stage.norm.running_mean.fill_(0.5)
    backbone = Backbone([("s", stage)], {"s": "c1"}, {"c1": 4}, {"c1": 2}).eval()
    folded = fold_batch_norms(backbone)
    images = torch.randn(1, 3, 8, 8)
    assert folded.stages["s"] is stage
    with torch.no_grad():
        assert torch.equal(folded(images)["c1"], backbone(images)["c1"])


def test_a_convolution_whose_map_is_an_output_keeps_the_norm_after_it():
    conv, norm = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)
    norm.running_mean.fill_(0.5)
    backbone = Backbone(
        [("conv", conv), ("norm", norm)], {"conv": "c1", "norm": "c2"}, {"c1": 4, "c2": 4}, {"c1": 1, "c2": 1}
    )
    folded = fold_batch_norms(backbone.eval())
    assert folded.stages["conv"] is conv and folded.stages["norm"] is norm  # c1 is the convolution's own map
    plain = fold_batch_norms(Backbone([("conv", conv), ("norm", norm)], {"norm": "c1"}, {"c1": 4}, {"c1": 1}).eval())
    assert _batch_norms(plain) == 0 and type(plain.stages["norm"]) is nn.Identity
