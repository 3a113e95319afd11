"""A :class:`~transferdet.models.backbone.Backbone` that wraps a library's feature extractor instead
of a list of stages: for networks that are not one sequence of stages (RegNet's trunk, GoogLeNet's
inception blocks, ShuffleNet's channel shuffles, ...).

The extractor is torchvision's ``create_feature_extractor`` (an FX graph of the classifier that
returns chosen nodes; its modules are the classifier's own, so checkpoints load by the classifier's
names). What the stage list does implicitly is explicit here: truncation to a map builds an
extractor that computes no further (:meth:`truncated`); a parameter's depth is the first map whose
computation uses it (:meth:`frozen_up_to`, for ``freeze_at``); there are no stages after c4 to use
as a C4 box head (:meth:`stages_between` is a one-line error).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import torch
from torch import nn

from transferdet.errors import TransferdetError
from transferdet.models.backbone import Backbone, at_stride

# builds the extractor of ``source`` that returns these {node: feature name}, in depth order
ExtractorFactory = Callable[[dict[str, str]], nn.Module]


class ResizedInput(nn.Module):
    """An extractor of a network that runs at one input size only (torchvision's MaxViT, whose
    windows tile 224 px): the image resized to ``size``, each map resampled back to the image's
    grid at its stride."""

    def __init__(self, extractor: nn.Module, size: tuple[int, int], strides: dict[str, int]) -> None:
        super().__init__()
        self.extractor, self.size, self.strides = extractor, tuple(size), dict(strides)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        height, width = x.shape[-2:]
        if (height, width) != self.size:
            x = nn.functional.interpolate(x, size=self.size, mode="bilinear", align_corners=False)
        return {name: at_stride(m, self.strides[name], height, width) for name, m in self.extractor(x).items()}


class ExtractorBackbone(Backbone):
    """``stages`` holds one module, ``body``: the extractor returning the maps of ``nodes``
    (node -> feature name, shallowest first). ``groups``, for a plain (single-map) ViT, are its
    parameter names in depth order (the patch embedding, then one block per group)."""

    groups: list[list[str]] | None = None

    def __init__(
        self,
        factory: ExtractorFactory,
        nodes: dict[str, str],
        channels: dict[str, int],
        strides: dict[str, int],
        mean: tuple[float, ...],
        std: tuple[float, ...],
    ) -> None:
        super().__init__([("body", factory(nodes))], {"body": list(nodes.values())[-1]}, channels, strides,
                         mean=mean, std=std)  # fmt: skip
        self.nodes = dict(nodes)
        self.__dict__["factory"] = factory  # not a module: the extractors share the source's modules

    @property
    def feature_names(self) -> list[str]:
        return list(self.nodes.values())

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        found = self.stages["body"](x)
        return OrderedDict((name, found[name]) for name in self.nodes.values())

    def stage_index(self, feature: str) -> int:
        names = self.feature_names
        if feature not in names:
            raise TransferdetError(f"backbone has no feature {feature!r} (it has {', '.join(names)})")
        return names.index(feature)

    def truncated(self, last: str) -> Backbone:
        """An extractor of the maps up to ``last`` that computes nothing after it (same modules)."""
        end = self.stage_index(last) + 1
        nodes = dict(list(self.nodes.items())[:end])
        kept = set(nodes.values())
        channels = {k: v for k, v in self.channels.items() if k in kept}
        strides = {k: v for k, v in self.strides.items() if k in kept}
        trunk = type(self)(self.factory, nodes, channels, strides, self.mean, self.std)
        trunk.spec, trunk.load_report, trunk.normalisation_source = (
            self.spec,
            self.load_report,
            self.normalisation_source,
        )
        trunk.groups = self.groups
        return trunk

    def stages_between(self, after: str, upto: str) -> list[nn.Module]:
        raise TransferdetError(
            f"{self.spec or 'this backbone'}: a feature extractor has no separate stages from {after} to {upto} "
            "for a C4 box head; use an FPN detector (faster_rcnn_fpn, retinanet, fcos, ...)"
        )

    def frozen_up_to(self, feature: str | None) -> list[str]:
        """Freeze every parameter that computing ``feature`` (and the maps before it) uses; None:
        nothing. Returns the frozen parameters' names."""
        if feature is None:
            return []
        trunk = self.truncated(feature)
        used = {id(p) for p in trunk.parameters()}
        frozen = [name for name, p in self.named_parameters() if id(p) in used]
        for parameter in trunk.parameters():
            parameter.requires_grad_(False)
        return frozen

    def frozen_groups(self, count: int) -> list[str]:
        """A plain backbone's ``freeze_at``: its first ``count`` parameter groups (a ViT's patch
        embedding with its position embedding and tokens, then one block per group)."""
        names = [name for group in (self.groups or [])[:count] for name in group]
        parameters = dict(self.named_parameters())
        for name in names:
            parameters[name].requires_grad_(False)
        return names
