"""timm feature wrappers that are not a list of stages (``FeatureHookNet``, ``FeatureGetterNet``
built on ``forward_intermediates``, HRNet's features) as an
:class:`~transferdet.models.extractor_backbone.ExtractorBackbone`: the wrapper's maps named by
their stride (``feature_info``, snapped to a power of two), with a parameter's depth read from
timm's ``group_matcher`` for a plain (single-map) ViT and measured otherwise: the first map whose
gradient reaches it.

Any input size: a model built with ``dynamic_img_size`` (ViT, DeiT, EVA, ...) interpolates its
position embeddings itself; one that only runs at its built size (BEiT's relative position tables,
PiT's and LeViT's fixed grids; found by one probe at another size) sees the image resized to that
size. Either way each map is resampled to the grid its snapped stride gives the input (a patch-14
map to stride 16), so that the detector's poolers and anchors line up.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from transferdet.models.backbone import at_stride, feature_name, runs_on_its_grid, snapped_stride
from transferdet.models.extractor_backbone import ExtractorBackbone


class TimmMaps(nn.Module):
    """``features`` (a timm ``features_only`` model) returning the maps of ``picks`` (the position
    in its output list, as text -> feature name), NCHW, on the grid of ``strides``; the input
    resized to ``fixed`` (height, width) first when the model runs at one size only."""

    def __init__(
        self, features: nn.Module, picks: dict[str, str], strides: dict[str, int], nhwc: bool, fixed: tuple | None
    ) -> None:
        super().__init__()
        self.features = features
        self.picks, self.strides, self.nhwc = dict(picks), dict(strides), nhwc
        self.fixed = tuple(fixed) if fixed else None

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        height, width = x.shape[-2:]
        if self.fixed is not None and (height, width) != self.fixed:
            x = nn.functional.interpolate(x, size=self.fixed, mode="bilinear", align_corners=False)
        found = self.features(x)
        found = list(found.values()) if isinstance(found, dict) else list(found)
        maps = {}
        for i, name in self.picks.items():
            value = found[int(i)].permute(0, 3, 1, 2) if self.nhwc else found[int(i)]
            maps[name] = at_stride(value, self.strides[name], height, width)
        return maps


class TimmMapsBackbone(ExtractorBackbone):
    """A timm wrapper's maps. Its truncation still runs the whole wrapper (timm's pruning edits the
    model in place, which the full backbone shares); its freezing follows parameter depths."""

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


def _picks(features: nn.Module) -> tuple[dict[str, str], dict[str, int], dict[str, int]]:
    """{output position: feature name}, channels and strides: one map per snapped stride, the last
    of equal ones."""
    info = features.feature_info
    picks: dict[str, str] = {}
    channels, strides = {}, {}
    for position, (reduction, width) in enumerate(zip(info.reduction(), info.channels(), strict=True)):
        stride = snapped_stride(reduction)
        name = feature_name(stride)
        picks = {i: n for i, n in picks.items() if n != name} | {str(position): name}
        channels[name], strides[name] = width, stride
    return picks, {n: channels[n] for n in picks.values()}, {n: strides[n] for n in picks.values()}


class _RawMaps(nn.Module):
    """A timm wrapper's outputs as they come (NCHW, not resampled), keyed by position, with the
    strides ``feature_info`` states: what :func:`runs_on_its_grid` probes."""

    def __init__(self, features: nn.Module, nhwc: bool) -> None:
        super().__init__()
        self.features, self.nhwc = features, nhwc
        self.strides = {str(i): r for i, r in enumerate(features.feature_info.reduction())}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        found = self.features(x)
        found = list(found.values()) if isinstance(found, dict) else list(found)
        return {str(i): m.permute(0, 3, 1, 2) if self.nhwc else m for i, m in enumerate(found)}


def _parameter_groups(features: nn.Module) -> list[list[str]] | None:
    """The wrapped model's parameters by timm's coarse ``group_matcher``, under the wrapper's names."""
    from timm.models import group_parameters

    model = getattr(features, "model", None)
    if model is None or not hasattr(model, "group_matcher"):
        return None
    groups = group_parameters(model, model.group_matcher(coarse=True))
    return [[f"stages.body.features.model.{n}" for n in names] for _, names in sorted(groups.items())]


def timm_maps_backbone(features: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]) -> TimmMapsBackbone:
    """The backbone of any timm ``features_only`` model: one map per stride (the last of equal ones)."""
    picks, channels, strides = _picks(features)
    nhwc = str(getattr(features, "output_fmt", "NCHW")).upper().endswith("NHWC")
    size = tuple(int(s) for s in (getattr(features, "pretrained_cfg", None) or {}).get("input_size", (3, 224, 224)))
    # one probe at another, non-square size: a model that runs at its built size only is fed a resized image
    fixed = None if runs_on_its_grid(_RawMaps(features, nhwc), size[-1] + 32, size[-1] + 64) else size[-2:]

    def factory(chosen: dict[str, str]) -> nn.Module:
        return TimmMaps(features, chosen, {n: strides[n] for n in chosen.values()}, nhwc, fixed)

    backbone = TimmMapsBackbone(factory, picks, channels, strides, mean, std)
    backbone.probe_size = int(size[-1])
    if len(picks) == 1:
        backbone.groups = _parameter_groups(features)
    return backbone
