"""timm feature wrappers that are not a list of stages (``FeatureHookNet``, ``FeatureGetterNet``
built on ``forward_intermediates``, HRNet's features) as an
:class:`~transferdet.models.extractor_backbone.ExtractorBackbone`: the wrapper's maps named by
their stride (``feature_info``), with a parameter's depth measured rather than read off a stage
list: the first map whose gradient reaches it."""

from __future__ import annotations

import math

import torch
from torch import nn

from transferdet.models.backbone import feature_name
from transferdet.models.extractor_backbone import ExtractorBackbone


class TimmMaps(nn.Module):
    """``features`` (a timm ``features_only`` model) returning the maps of ``picks`` (the position
    in its output list, as text -> feature name), NCHW."""

    def __init__(self, features: nn.Module, picks: dict[str, str], nhwc: bool) -> None:
        super().__init__()
        self.features = features
        self.picks, self.nhwc = dict(picks), nhwc

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        found = self.features(x)
        found = list(found.values()) if isinstance(found, dict) else list(found)
        return {
            name: found[int(i)].permute(0, 3, 1, 2) if self.nhwc else found[int(i)] for i, name in self.picks.items()
        }


class TimmMapsBackbone(ExtractorBackbone):
    """A timm wrapper's maps. Its truncation still runs the whole wrapper (timm's pruning edits the
    model in place, which the full backbone shares); its freezing measures each parameter's depth."""

    probe_size: int = 224

    def truncated(self, last: str) -> ExtractorBackbone:
        trunk = super().truncated(last)
        trunk.probe_size = self.probe_size
        return trunk

    @torch.enable_grad()
    def parameter_depths(self) -> dict[str, int]:
        """Each parameter's depth: the index of the first map (shallowest first) it feeds."""
        training = self.training
        self.eval()
        named = [(n, p) for n, p in self.named_parameters() if p.requires_grad]
        maps = self(torch.zeros(1, 3, self.probe_size, self.probe_size))
        depths: dict[str, int] = {}
        for index, value in enumerate(maps.values()):
            grads = torch.autograd.grad(value.sum(), [p for _, p in named], allow_unused=True, retain_graph=True)
            for (name, _), grad in zip(named, grads, strict=True):
                if grad is not None and name not in depths:
                    depths[name] = index
        self.train(training)
        return depths

    def frozen_up_to(self, feature: str | None) -> list[str]:
        if feature is None:
            return []
        limit = self.stage_index(feature)
        depths = self.parameter_depths()
        frozen = [n for n, _ in self.named_parameters() if depths.get(n, math.inf) <= limit]
        parameters = dict(self.named_parameters())
        for name in frozen:
            parameters[name].requires_grad_(False)
        return frozen


def timm_maps_backbone(features: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]) -> TimmMapsBackbone:
    """The backbone of any timm ``features_only`` model: one map per stride (the last of equal ones)."""
    info = features.feature_info
    picks: dict[str, str] = {}
    for position, reduction in enumerate(info.reduction()):
        name = feature_name(reduction)
        picks = {i: n for i, n in picks.items() if n != name} | {str(position): name}
    channels = {feature_name(r): c for r, c in zip(info.reduction(), info.channels(), strict=True)}
    strides = {feature_name(r): r for r in info.reduction()}
    nhwc = str(getattr(features, "output_fmt", "NCHW")).upper().endswith("NHWC")

    def factory(chosen: dict[str, str]) -> nn.Module:
        return TimmMaps(features, chosen, nhwc)

    backbone = TimmMapsBackbone(factory, picks, {n: channels[n] for n in picks.values()},
                                {n: strides[n] for n in picks.values()}, mean, std)  # fmt: skip
    size = (getattr(features, "pretrained_cfg", None) or {}).get("input_size", (3, 224, 224))
    backbone.probe_size = int(size[-1])
    return backbone
