"""Norm policy and freezing of a backbone's stages, as detection recipes set them."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from transferdet.errors import TransferdetError
from transferdet.models.backbone import Backbone
from transferdet.models.extractor_backbone import ExtractorBackbone

NORM_POLICIES = ("frozen_bn", "bn", "syncbn", "gn")


def norm_for_processes(policy: str | None, distributed: bool) -> str | None:
    """The norm ``policy`` a recipe asks for, as it can run: ``syncbn`` becomes plain ``bn`` in a
    single process (with nothing to synchronise with, SyncBatchNorm refuses to train); every
    other policy is kept. The one place where a recipe's SyncBN is decided, for the backbone and
    the FPN alike."""
    return "bn" if policy == "syncbn" and not distributed else policy


def _replace_bn(module: nn.Module, make: Callable[[nn.BatchNorm2d], nn.Module]) -> nn.Module:
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, make(child))
        else:
            _replace_bn(child, make)
    return module


def _group_norm(bn: nn.BatchNorm2d) -> nn.Module:
    channels = bn.num_features
    groups = next(g for g in (32, 16, 8, 4, 2, 1) if channels % g == 0)
    norm = nn.GroupNorm(groups, channels, eps=bn.eps, affine=True)
    if bn.affine:
        with torch.no_grad():
            norm.weight.copy_(bn.weight)
            norm.bias.copy_(bn.bias)
    extras = [getattr(bn, a) for a in ("drop", "act") if isinstance(getattr(bn, a, None), nn.Module)]
    return nn.Sequential(norm, *extras) if extras else norm


def apply_norm_policy(module: nn.Module, policy: str) -> nn.Module:
    """``frozen_bn``: BatchNorm with fixed statistics and affine terms; ``bn``: trained BatchNorm;
    ``syncbn``: BatchNorm synchronised across DDP processes; ``gn``: GroupNorm (pretrained affine
    terms kept). timm's norm+activation layers keep their activation."""
    if policy == "bn":
        return module
    if policy == "frozen_bn":
        from timm.layers import freeze_batch_norm_2d

        return freeze_batch_norm_2d(module)
    if policy == "syncbn":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    if policy == "gn":
        return _replace_bn(module, _group_norm)
    raise TransferdetError(f"unknown norm policy {policy!r} (choose from {', '.join(NORM_POLICIES)})")


def freeze_stages(backbone: Backbone, freeze_at: int) -> list[str]:
    """Freeze every stage up to and including the one that emits ``c{freeze_at}`` (0: nothing);
    for a plain (single-map) ViT the first ``freeze_at`` parameter groups (the patch embedding,
    then its blocks). Returns the frozen stage (or parameter) names."""
    if freeze_at <= 0:
        return []
    if getattr(backbone, "groups", None):  # a plain ViT: its patch embedding, then one block per group
        return backbone.frozen_groups(freeze_at)
    if isinstance(backbone, ExtractorBackbone):  # no stages: the parameters the maps up to c{freeze_at} use
        earlier = [n for n in backbone.feature_names if n.startswith("c") and int(n[1:]) <= freeze_at]
        return backbone.frozen_up_to(earlier[-1] if earlier else None)
    names = list(backbone.stages)
    emitted = {o: names.index(s) for s, o in backbone.outputs.items()}
    wanted = f"c{freeze_at}"
    if wanted in emitted:
        end = emitted[wanted] + 1
    else:  # no such feature (e.g. no stride-2 map): freeze what comes before the next one
        later = [i for o, i in emitted.items() if o.startswith("c") and int(o[1:]) > freeze_at]
        end = min(later) if later else len(names)
    for name in names[:end]:
        for parameter in backbone.stages[name].parameters():
            parameter.requires_grad_(False)
    return names[:end]
