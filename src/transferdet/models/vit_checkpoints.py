"""Checkpoint layouts of plain ViTs, converted to timm's names before matching: DINO (teacher or
student, ``backbone.`` prefix), DINOv2 (``register_tokens``, ``mask_token``, SwiGLU ``w12``/``w3``),
MAE and DeiT (``model``), OpenAI/OpenCLIP image towers, and ``pos_embed`` or patch embeddings of
another grid or patch size. The conversion is timm's own ``checkpoint_filter_fn`` of the model's
module (what ``timm.create_model(pretrained=True)`` runs), after the wrapper and prefix are taken
off; a DeiT distillation token the architecture lacks is dropped first (its embedding with it)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping

import torch
from torch import nn

Converter = Callable[[Mapping[str, torch.Tensor]], dict[str, torch.Tensor]]


def _without_distillation_token(tensors: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """A distilled DeiT checkpoint for a model without ``dist_token``: drop the token and its
    position embedding (index 1, after the class token's)."""
    if "dist_token" not in tensors or hasattr(model, "dist_token") and model.dist_token is not None:
        return tensors
    tensors = {k: v for k, v in tensors.items() if k not in ("dist_token", "head_dist.weight", "head_dist.bias")}
    position = tensors.get("pos_embed")
    if position is not None and not getattr(model, "no_embed_class", False):
        tensors["pos_embed"] = torch.cat([position[:, :1], position[:, 2:]], dim=1)
    return tensors


def plain_vit_converter(model: nn.Module) -> Converter | None:
    """The converter of ``model``'s checkpoints (built on the meta device: shapes only), or None
    when its timm module has no checkpoint filter."""
    convert = getattr(sys.modules[type(model).__module__], "checkpoint_filter_fn", None)
    if convert is None:
        return None

    def converted(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return dict(convert(_without_distillation_token(dict(tensors), model), model))

    return converted
