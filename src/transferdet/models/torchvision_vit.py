"""torchvision's plain ViTs (``vit_b_16`` ... ``vit_h_14``) as an
:class:`~transferdet.models.extractor_backbone.ExtractorBackbone` with one map: the encoder's patch
tokens (class token dropped) as a grid, on the stride of the patch size snapped to a power of two.

A torchvision ViT runs at the one size it was built for (its position embedding is not
interpolated at run time), so the image is resized to that size and the map resampled back to
the image's grid. A checkpoint's position embedding of another grid is interpolated at load by
torchvision's own ``interpolate_embeddings``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from transferdet.models.backbone import at_stride, feature_name, snapped_stride
from transferdet.models.extractor_backbone import ExtractorBackbone
from transferdet.models.normalisation import IMAGENET_MEAN, IMAGENET_STD


class TorchvisionViTMap(nn.Module):
    """The patch-token map of a torchvision ``VisionTransformer`` (its modules, shared)."""

    def __init__(self, model: nn.Module, name: str) -> None:
        super().__init__()
        self.conv_proj, self.encoder, self.class_token = model.conv_proj, model.encoder, model.class_token
        self.image_size, self.patch_size, self.name = model.image_size, model.patch_size, name
        self.stride = snapped_stride(model.patch_size)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        height, width = x.shape[-2:]
        size = (self.image_size, self.image_size)
        if (height, width) != size:
            x = nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False)
        patches = self.conv_proj(x)  # N, D, g, g
        grid = patches.shape[-2:]
        tokens = patches.flatten(2).transpose(1, 2)
        tokens = self.encoder(torch.cat([self.class_token.expand(len(x), -1, -1), tokens], dim=1))
        plane = tokens[:, 1:].transpose(1, 2).reshape(len(x), -1, *grid)
        return {self.name: at_stride(plane, self.stride, height, width)}


def is_torchvision_vit(model: nn.Module) -> bool:
    from torchvision.models.vision_transformer import VisionTransformer

    return isinstance(model, VisionTransformer)


def torchvision_vit_backbone(model: nn.Module) -> ExtractorBackbone:
    stride = snapped_stride(model.patch_size)
    name = feature_name(stride)

    def factory(chosen: dict[str, str]) -> nn.Module:
        return TorchvisionViTMap(model, name)

    backbone = ExtractorBackbone(factory, {"encoder": name}, {name: model.hidden_dim}, {name: stride},
                                 IMAGENET_MEAN, IMAGENET_STD)  # fmt: skip
    stem = ["stages.body.class_token", "stages.body.encoder.pos_embedding"]
    stem += [f"stages.body.conv_proj.{n}" for n, _ in model.conv_proj.named_parameters()]
    blocks = [
        [f"stages.body.encoder.layers.{layer}.{n}" for n, _ in block.named_parameters()]
        for layer, block in model.encoder.layers.named_children()
    ]
    backbone.groups = [stem, *blocks]
    return backbone


def position_converter(model: nn.Module) -> Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]:
    """A checkpoint's ``encoder.pos_embedding`` interpolated to the model's grid (torchvision's own)."""
    from torchvision.models.vision_transformer import interpolate_embeddings

    def converted(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if "encoder.pos_embedding" not in tensors:
            return dict(tensors)
        return dict(interpolate_embeddings(model.image_size, model.patch_size, dict(tensors)))

    return converted
