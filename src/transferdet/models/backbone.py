"""The :class:`Backbone` type: a network as an ordered list of stages, some of which emit a feature
map named by its stride (``c1``..``c5`` for strides 2..32).

Running stages in order (rather than a library's own feature wrapper) lets a detector cut the
network anywhere, e.g. the C4 detector that uses the last stage as its RoI head. The adapters
(:mod:`~transferdet.models.timm_adapter`, :mod:`~transferdet.models.torchvision_adapter`) cut a
library's model into stages; :mod:`~transferdet.models.backbones` gives them weights.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections import OrderedDict

import torch
from torch import nn

from transferdet.errors import TransferdetError
from transferdet.models.checkpoints import LoadReport
from transferdet.models.normalisation import IMAGENET_MEAN, IMAGENET_STD
from transferdet.models.specs import ModelSpec

STRIDE_NAMES = {2: "c1", 4: "c2", 8: "c3", 16: "c4", 32: "c5"}


def feature_name(stride: int) -> str:
    return STRIDE_NAMES.get(stride, f"stride{stride}")


def snapped_stride(stride: float) -> int:
    """A stride as the nearest power of two in log scale (AlexNet's 224 / 6 is 32, a patch-14 ViT's
    14 is 16): torchvision's RoI poolers and anchor grids assume powers of two."""
    return 2 ** round(math.log2(stride))


def at_stride(feature_map: torch.Tensor, stride: int, height: int, width: int) -> torch.Tensor:
    """``feature_map`` resampled (bilinear) to the grid ``stride`` gives an input of ``height`` x
    ``width``, when it is not on that grid already (a patch-14 ViT's map, a fixed-size model's)."""
    size = (math.ceil(height / stride), math.ceil(width / stride))
    if tuple(feature_map.shape[-2:]) == size:
        return feature_map
    return nn.functional.interpolate(feature_map, size=size, mode="bilinear", align_corners=False)


def dedupe_outputs(outputs: dict[str, str], order: list[str]) -> dict[str, str]:
    """Keep, for each feature name, the last stage that emits it."""
    last: dict[str, str] = {}
    for stage in order:
        if stage in outputs:
            last[outputs[stage]] = stage
    return {stage: feature for feature, stage in last.items()}


@torch.no_grad()
def runs_on_its_grid(backbone: nn.Module, height: int, width: int) -> bool:
    """Whether ``backbone`` runs on a blank ``height`` x ``width`` input with every map on the grid
    of its stride (a network that runs at one size only asserts, fails on a shape, or keeps its
    built grid). Eval mode for the probe; the mode is restored."""
    training = backbone.training
    backbone.eval()
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # an FX graph prints its failing line there
            maps = backbone(torch.zeros(1, 3, height, width))
    except Exception:  # noqa: BLE001 - fixed-size networks fail with assertions, shape, type and index errors
        return False
    finally:
        backbone.train(training)
    return all(
        isinstance(m, torch.Tensor) and m.dim() == 4 and abs(m.shape[-1] - width / backbone.strides[n]) <= 1.5
        for n, m in maps.items()
    )


class Backbone(nn.Module):
    """Stages run in order; ``outputs`` maps a stage name to the feature name it emits.

    ``forward`` returns an ``OrderedDict`` of NCHW feature maps. ``channels`` and ``strides`` are
    per feature name; ``mean``/``std`` are the input normalisation the weights expect (RGB, [0, 1]).
    """

    def __init__(
        self,
        stages: list[tuple[str, nn.Module]],
        outputs: dict[str, str],
        channels: dict[str, int],
        strides: dict[str, int],
        nhwc: bool = False,
        mean: tuple[float, ...] = IMAGENET_MEAN,
        std: tuple[float, ...] = IMAGENET_STD,
    ) -> None:
        super().__init__()
        self.stages = nn.ModuleDict(OrderedDict(stages))
        self.outputs = dict(outputs)
        self.channels = dict(channels)
        self.strides = dict(strides)
        self.nhwc = nhwc
        self.mean, self.std = tuple(mean), tuple(std)
        self.normalisation_source = "the architecture's default (timm pretrained_cfg, else ImageNet)"
        self.spec: ModelSpec | None = None
        self.load_report: LoadReport | None = None
        # the checkpoint's own classifier on average-pooled c5 features, when it has a plain linear
        # one and the checkpoint provided its weights (used for LEEP/NCE); not part of the module tree
        self.__dict__["classifier"] = None

    @property
    def feature_names(self) -> list[str]:
        return list(self.outputs.values())

    def map_for(self, layer: str) -> str:
        """The map a layer name reads: itself, or for ``c5`` on a backbone without a stride-32 map
        (a plain ViT's single stride-16 map, SqueezeNet's c4) its deepest map up to stride 32."""
        if layer in self.channels or layer != "c5":
            return layer
        shallower = [n for n in self.feature_names if self.strides[n] <= 32]
        return max(shallower, key=lambda n: self.strides[n]) if shallower else layer

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        features: OrderedDict[str, torch.Tensor] = OrderedDict()
        for name, stage in self.stages.items():
            x = stage(x)
            if name in self.outputs:
                features[self.outputs[name]] = x.permute(0, 3, 1, 2) if self.nhwc else x
                if len(features) == len(self.outputs):
                    break
        return features

    def stage_index(self, feature: str) -> int:
        names = list(self.stages)
        for stage, out in self.outputs.items():
            if out == feature:
                return names.index(stage)
        raise TransferdetError(f"backbone has no feature {feature!r} (it has {', '.join(self.feature_names)})")

    def truncated(self, last: str) -> Backbone:
        """A backbone sharing this one's stages, stopping after feature ``last``."""
        end = self.stage_index(last) + 1
        stages = list(self.stages.items())[:end]
        kept = {s: o for s, o in self.outputs.items() if s in dict(stages)}
        trunk = Backbone(
            stages,
            kept,
            {o: self.channels[o] for o in kept.values()},
            {o: self.strides[o] for o in kept.values()},
            self.nhwc,
            self.mean,
            self.std,
        )
        trunk.spec, trunk.load_report = self.spec, self.load_report
        return trunk

    def stages_between(self, after: str, upto: str) -> list[nn.Module]:
        """The stages that turn feature ``after`` into feature ``upto``."""
        modules = list(self.stages.values())
        return modules[self.stage_index(after) + 1 : self.stage_index(upto) + 1]
