"""The pieces between a :class:`~transferdet.models.backbone.Backbone` and a torchvision detector:
an FPN over chosen levels, ViTDet's simple feature pyramid over a plain backbone's single map, a
single map (C4), the last stage as a box head (C4), SSD's extra maps."""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
from torch import nn
from torchvision.ops.feature_pyramid_network import FeaturePyramidNetwork, LastLevelMaxPool, LastLevelP6P7

from transferdet.models.backbone import Backbone
from transferdet.precision import in_float32


def fpn_norm_layer(norm: str | None):  # noqa: ANN201 - a norm layer class or factory, or None
    """The norm after the FPN's lateral and output convolutions (detectron2's ``MODEL.FPN.NORM``):
    none (torchvision's FPN), BN, SyncBN or GroupNorm with 32 groups. As the backbone's norm policy,
    ``syncbn`` is taken as given (a recipe's is resolved for the number of processes by
    :func:`~transferdet.models.norms.norm_for_processes`)."""
    if norm is None:
        return None
    if norm == "bn":
        return nn.BatchNorm2d
    if norm == "syncbn":
        return nn.SyncBatchNorm
    if norm == "gn":
        return lambda channels: nn.GroupNorm(32, channels)
    raise ValueError(f"unknown FPN norm {norm!r} (choose from bn, syncbn, gn)")


class Float32P6P7(LastLevelP6P7):
    """torchvision's P6/P7 block (RetinaNet, FCOS), always in float32, whatever autocast says.

    Under CPU bf16 autocast, oneDNN's weight gradient of a 3 x 3 convolution whose input map is
    1 x 1 (P7 from P6 for images under about 100 px) is garbage on AVX512-BF16 and AMX CPUs, and
    different on each call (benchmarks/RESULTS.md). These two convolutions on the smallest maps
    cost next to nothing in float32. Same parameters and state dict keys as ``LastLevelP6P7``."""

    def forward(
        self, p: list[torch.Tensor], c: list[torch.Tensor], names: list[str]
    ) -> tuple[list[torch.Tensor], list[str]]:
        with in_float32(p[-1] if self.use_P5 else c[-1]) as x:
            p6 = self.p6(x)
            p7 = self.p7(nn.functional.relu(p6))
        return [*p, p6, p7], [*names, "p6", "p7"]


class FeaturePyramid(nn.Module):
    """A backbone's ``levels`` through an FPN; ``out_channels`` as torchvision detectors expect."""

    def __init__(
        self, body: Backbone, levels: list[str], out_channels: int, extra: str, norm: str | None = None
    ) -> None:
        super().__init__()
        self.body = body.truncated(levels[-1])
        self.levels = levels
        extra_block = LastLevelMaxPool() if extra == "pool" else Float32P6P7(out_channels, out_channels)
        channels = [body.channels[lv] for lv in levels]
        self.fpn = FeaturePyramidNetwork(channels, out_channels, extra_block, norm_layer=fpn_norm_layer(norm))
        self.out_channels = out_channels

    @property
    def extra_keys(self) -> list[str]:
        """The keys the extra block adds: ``pool`` (max-pooled last level) or ``p6, p7``."""
        return ["pool"] if isinstance(self.fpn.extra_blocks, LastLevelMaxPool) else ["p6", "p7"]

    def from_body(self, features: OrderedDict[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
        """The pyramid of the body's maps (already computed)."""
        return self.fpn(OrderedDict((level, features[level]) for level in self.levels))

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        return self.from_body(self.body(x))


def _scale_ops(channels: int, factor: float) -> tuple[list[nn.Module], int]:
    """ViTDet's resampling of one pyramid level: ``factor`` > 1 upsamples by 2x2 stride-2
    deconvolutions, halving the channels, with LayerNorm and GELU between them; < 1 max-pools."""
    ops: list[nn.Module] = []
    if factor < 1:
        return [nn.MaxPool2d(round(1 / factor), round(1 / factor))], channels
    from timm.layers import LayerNorm2d

    for step in range(round(math.log2(factor))):
        if step:
            ops += [LayerNorm2d(channels), nn.GELU()]
        ops.append(nn.ConvTranspose2d(channels, channels // 2, 2, 2))
        channels //= 2
    return ops, channels


def simple_pyramid_levels(body: Backbone, levels: tuple[str, ...] = ("c2", "c3", "c4", "c5")) -> dict[str, str]:
    """How the simple pyramid makes each level from a plain body's one map, in words (zoo inspect)."""
    source = body.feature_names[-1]
    stride = body.strides[source]
    found = {}
    for level in levels:
        factor = stride / 2 ** int(level[1:])
        if factor > 1:
            steps = round(math.log2(factor))
            found[level] = f"{steps} deconvolution{'s' if steps > 1 else ''} of {source}"
        else:
            found[level] = f"{source} max-pooled {round(1 / factor)}x" if factor < 1 else source
    return found


class SimplePyramid(nn.Module):
    """ViTDet's simple feature pyramid (Li, Mao, Girshick, He, "Exploring Plain Vision Transformer
    Backbones for Object Detection", ECCV 2022, section 3): each of ``levels`` (named by stride,
    ``c2`` = 4) made from the plain backbone's last map alone, by deconvolutions (finer) or max
    pooling (coarser), then a 1x1 and a 3x3 convolution, each followed by LayerNorm; plus the same
    extra levels as the FPN (``pool``, or P6/P7). It is a neck outside ``body``: the backbone's
    freezing and checkpoint keys are those of the backbone alone."""

    def __init__(self, body: Backbone, levels: list[str], out_channels: int, extra: str) -> None:
        super().__init__()
        from timm.layers import LayerNorm2d

        self.body, self.levels, self.out_channels = body, list(levels), out_channels
        self.source = body.feature_names[-1]
        stride, width = body.strides[self.source], body.channels[self.source]
        branches = {}
        for level in levels:
            ops, channels = _scale_ops(width, stride / 2 ** int(level[1:]))
            branches[level] = nn.Sequential(
                *ops,
                nn.Conv2d(channels, out_channels, 1, bias=False),
                LayerNorm2d(out_channels),
                nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
                LayerNorm2d(out_channels),
            )
        self.neck = nn.ModuleDict(branches)
        self.extra_blocks = LastLevelMaxPool() if extra == "pool" else Float32P6P7(out_channels, out_channels)

    @property
    def extra_keys(self) -> list[str]:
        return ["pool"] if isinstance(self.extra_blocks, LastLevelMaxPool) else ["p6", "p7"]

    def from_body(self, features: OrderedDict[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
        single = features[self.source]
        maps, names = self.extra_blocks([self.neck[lv](single) for lv in self.levels], [single], list(self.levels))
        return OrderedDict(zip(names, maps, strict=True))

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        return self.from_body(self.body(x))


class SingleMap(nn.Module):
    """A backbone cut after one feature map, returned as the only map (the C4 trunk)."""

    def __init__(self, body: Backbone, level: str) -> None:
        super().__init__()
        self.body = body.truncated(level)
        self.level = level
        self.out_channels = body.channels[level]

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        return OrderedDict([(self.level, self.body(x)[self.level])])


class StageBoxHead(nn.Module):
    """The backbone's stages from c4 to c5 on RoI features, average-pooled: the C4 box head."""

    def __init__(self, body: Backbone) -> None:
        super().__init__()
        self.stages = nn.Sequential(*body.stages_between("c4", "c5"))
        self.nhwc = body.nhwc
        self.out_channels = body.channels["c5"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2) if self.nhwc else self.stages(x)
        return torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)


class SSDFeatures(nn.Module):
    """c3..c5 of the backbone plus ``extras`` stride-2 blocks, for SSD's multi-map head."""

    def __init__(self, body: Backbone, extras: int = 2, width: int = 256) -> None:
        super().__init__()
        self.levels = [lv for lv in ("c3", "c4", "c5") if lv in body.channels]
        self.body = body.truncated(self.levels[-1])
        blocks, channels = [], body.channels[self.levels[-1]]
        for _ in range(extras):
            blocks.append(
                nn.Sequential(
                    nn.Conv2d(channels, width // 2, 1),
                    nn.ReLU(inplace=True),
                    nn.Conv2d(width // 2, width, 3, stride=2, padding=1),
                    nn.ReLU(inplace=True),
                )
            )
            channels = width
        self.extras = nn.ModuleList(blocks)
        self.out_channels = [body.channels[lv] for lv in self.levels] + [width] * extras

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        features = self.body(x)
        maps = [features[lv] for lv in self.levels]
        # the extra maps shrink to 1 x 1, where oneDNN's bf16 weight gradient of a 3 x 3 convolution
        # is wrong on CPUs (see Float32P6P7): like P6/P7 they run in float32, at next to no cost
        with in_float32(maps[-1]) as y:
            for block in self.extras:
                y = block(y)
                maps.append(y)
        return OrderedDict((str(i), m) for i, m in enumerate(maps))
