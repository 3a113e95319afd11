"""The torch dataset moves pixels, boxes and masks together through transforms.v2."""

from __future__ import annotations

import numpy as np
import torch
from torchvision import tv_tensors

from transferdet.data import formats
from transferdet.data.transforms import (
    TorchDetectionDataset,
    collate_detection,
    detection_transforms,
)


def mask_box(mask: torch.Tensor) -> list[float]:
    ys, xs = torch.nonzero(mask, as_tuple=True)
    return [xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1]


def test_flip_and_resize_keep_boxes_on_masks(synthetic):
    records = formats.read(synthetic).records("train")[:6]
    transforms = detection_transforms(train=True, min_size=256, flip=1.0)
    dataset = TorchDetectionDataset(records, transforms, with_masks=True, label_offset=1)
    for index in range(len(dataset)):
        image, target = dataset[index]
        record = records[index]
        assert isinstance(image, tv_tensors.Image) and image.shape == (3, 256, 256)
        assert image.dtype == torch.float32 and image.min() >= 0.0 and image.max() <= 1.0
        assert target["labels"].tolist() == (record.labels + 1).tolist()
        # flipped and doubled: x1' = 2 * (128 - x2)
        expected = record.boxes * 2
        expected[:, [0, 2]] = 256 - expected[:, [2, 0]]
        np.testing.assert_allclose(target["boxes"].numpy(), expected)
        for mask, box in zip(target["masks"], target["boxes"], strict=True):
            np.testing.assert_allclose(mask_box(mask), box.tolist(), atol=2)


def test_eval_transforms_do_not_flip_and_collate(synthetic):
    records = formats.read(synthetic).records("test")[:3]
    dataset = TorchDetectionDataset(records, detection_transforms(train=False, min_size=128))
    images, targets = collate_detection([dataset[i] for i in range(3)])
    assert len(images) == len(targets) == 3
    np.testing.assert_allclose(targets[0]["boxes"].numpy(), records[0].boxes)
