"""A user's own backbone as a transferdet plug-in: a tiny transformer-style network (patch
embedding, then stages of windowless self-attention blocks with a strided merge between them),
registered with timm so that ``timm:toy_attention_net`` works in every transferdet command:

    transferdet --plugin docs/examples/toy_attention_net.py rank --data DATA --models timm:toy_attention_net
    transferdet --plugin docs/examples/toy_attention_net.py train --data DATA \
        --backbone timm:toy_attention_net@my_weights.pth --detector mask_rcnn_fpn --recipe adamw_1x

timm's ``features_only`` wrapper needs the model's stages as top-level modules and their
``feature_info`` (channels and stride of each output); transferdet reads the rest from there.
"""

from __future__ import annotations

import torch
from timm.models import build_model_with_cfg, register_model
from torch import nn


class AttentionBlock(nn.Module):
    """Pre-norm self-attention over all positions, then an MLP, each with a residual."""

    def __init__(self, channels: int, heads: int) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(channels), nn.LayerNorm(channels)
        self.attention = nn.MultiheadAttention(channels, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(channels, 2 * channels), nn.GELU(), nn.Linear(2 * channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        tokens = x.flatten(2).transpose(1, 2)
        normed = self.norm1(tokens)
        tokens = tokens + self.attention(normed, normed, normed, need_weights=False)[0]
        tokens = tokens + self.mlp(self.norm2(tokens))
        return tokens.transpose(1, 2).reshape(batch, channels, height, width)


class ToyAttentionNet(nn.Module):
    """Stride-4 patch embedding, then 4 stages (strides 4, 8, 16, 32), one attention block each."""

    def __init__(self, widths: tuple[int, ...] = (16, 32, 48, 64), num_classes: int = 10, **kwargs) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, widths[0], kernel_size=4, stride=4)
        stages = []
        for i, width in enumerate(widths):
            merge = nn.Conv2d(widths[i - 1], width, 2, stride=2) if i else nn.Identity()
            stages.append(nn.Sequential(merge, AttentionBlock(width, heads=2)))
        self.stages = nn.Sequential(*stages)
        self.feature_info = [
            {"num_chs": width, "reduction": 4 * 2**i, "module": f"stages.{i}"} for i, width in enumerate(widths)
        ]
        self.head = nn.Linear(widths[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)).mean(dim=(2, 3)))


def _build(name: str, feature_cfg: dict, pretrained: bool, kwargs: dict) -> ToyAttentionNet:
    # the input normalisation its weights expect, and where its classifier is (timm's model card)
    card = kwargs.pop("pretrained_cfg", None) or {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5), "classifier": "head"}
    return build_model_with_cfg(ToyAttentionNet, name, pretrained, pretrained_cfg=card, feature_cfg=feature_cfg,
                                **kwargs)  # fmt: skip


@register_model
def toy_attention_net(pretrained: bool = False, **kwargs) -> ToyAttentionNet:
    return _build("toy_attention_net", {"flatten_sequential": True, "out_indices": (0, 1, 2, 3)}, pretrained, kwargs)


@register_model
def toy_attention_net_hooks(pretrained: bool = False, **kwargs) -> ToyAttentionNet:
    """The same network with timm's hook-based feature wrapper (``FeatureHookNet``), as a network
    that is not one sequence of top-level stages registers itself; transferdet takes it alike."""
    return _build("toy_attention_net_hooks", {"feature_cls": "hook", "out_indices": (0, 1, 2, 3)}, pretrained, kwargs)
