"""Box pooling by separable weights equals torchvision's RoI-Align averaged over its 7 x 7 bins."""

from __future__ import annotations

import pytest
import torch
from torchvision.ops import roi_align

from transferdet.transfer.box_pooling import box_means


def _reference(feature_map: torch.Tensor, boxes: torch.Tensor, scale: float) -> torch.Tensor:
    return roi_align(feature_map[None], [boxes], 7, scale, 2, aligned=True).mean(dim=(2, 3))


@pytest.mark.parametrize(("height", "width", "stride"), [(4, 5, 32), (16, 16, 8), (1, 1, 32), (33, 17, 4)])
def test_box_means_equal_roi_align_averaged(height, width, stride):
    generator = torch.Generator().manual_seed(height * 100 + width)
    feature_map = torch.randn(24, height, width, generator=generator)
    size = torch.tensor([width, height, width, height], dtype=torch.float32) * stride
    corners = torch.rand(40, 4, generator=generator) * 1.3 - 0.15  # some beyond the image, as boxes near edges
    boxes = torch.cat([corners[:, :2].minimum(corners[:, 2:]), corners[:, :2].maximum(corners[:, 2:])], dim=1) * size
    tiny = torch.tensor([[3.0, 3.0, 3.5, 3.2], [0.0, 0.0, 1.0, 1.0], [0.0, 0.0, float(size[0]), float(size[1])]])
    boxes = torch.cat([boxes, tiny])
    expected = _reference(feature_map, boxes, 1.0 / stride)
    pooled = box_means(feature_map, boxes, 1.0 / stride)
    assert pooled.shape == expected.shape == (43, 24)
    assert torch.allclose(pooled, expected, rtol=1e-5, atol=1e-6)


def test_box_means_follow_a_channels_last_map():
    feature_map = torch.randn(1, 8, 6, 7).contiguous(memory_format=torch.channels_last)[0]
    boxes = torch.tensor([[2.0, 3.0, 40.0, 30.0], [10.0, 0.0, 55.0, 47.0]])
    assert torch.allclose(box_means(feature_map, boxes, 1 / 8), _reference(feature_map, boxes, 1 / 8), atol=1e-6)
