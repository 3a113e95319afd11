"""Feeding torchvision detection models: a torch Dataset over records, with ``transforms.v2``.

Images become ``tv_tensors.Image``, boxes ``tv_tensors.BoundingBoxes`` (XYXY) and masks
``tv_tensors.Mask``, so that resizing and flipping move pixels, boxes and masks together.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from transferdet.data.dataset import ImageRecord
from transferdet.data.masks import record_masks


def detection_transforms(
    train: bool,
    min_size: int | Sequence[int] | None = None,
    max_size: int | None = None,
    flip: float = 0.5,
    normalize: tuple[Sequence[float], Sequence[float]] | None = None,
) -> v2.Compose:
    """Resize (shorter side to ``min_size``; a random choice among several sizes when training;
    no resize when ``min_size`` is None, as for torchvision detectors, which resize themselves),
    flip horizontally when training, convert to float in [0, 1], drop degenerate boxes, and
    optionally normalise with ``(mean, std)``."""
    steps: list[Any] = [v2.ToImage()]
    if min_size is not None:
        sizes = [min_size] if isinstance(min_size, int) else list(min_size)
        if train and len(sizes) > 1:
            steps.append(v2.RandomShortestSize(min_size=sizes, max_size=max_size, antialias=True))
        else:
            steps.append(v2.Resize(sizes[-1], max_size=max_size, antialias=True))
    if train and flip > 0:
        steps.append(v2.RandomHorizontalFlip(flip))
    steps += [v2.ToDtype(torch.float32, scale=True), v2.SanitizeBoundingBoxes(min_size=1.0)]
    if normalize is not None:
        steps.append(v2.Normalize(mean=list(normalize[0]), std=list(normalize[1])))
    return v2.Compose(steps)


class TorchDetectionDataset(torch.utils.data.Dataset):
    """``(image, target)`` pairs as torchvision detection models take them.

    ``target`` has ``boxes`` (BoundingBoxes), ``labels`` (int64, dataset labels plus
    ``label_offset``: 1 for models that keep 0 for background), ``image_id`` (the record's index)
    and, with ``with_masks``, ``masks``.
    """

    def __init__(
        self,
        records: list[ImageRecord],
        transforms: v2.Transform | None = None,
        with_masks: bool = False,
        label_offset: int = 0,
    ) -> None:
        self.records = records
        self.transforms = transforms
        self.with_masks = with_masks
        self.label_offset = label_offset

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, Any]]:
        record = self.records[index]
        with Image.open(record.path) as picture:
            image = tv_tensors.Image(F.pil_to_tensor(picture.convert("RGB")))
        height, width = image.shape[-2:]
        target: dict[str, Any] = {
            "boxes": tv_tensors.BoundingBoxes(
                torch.as_tensor(record.boxes, dtype=torch.float32),
                format=tv_tensors.BoundingBoxFormat.XYXY,
                canvas_size=(height, width),
            ),
            "labels": torch.as_tensor(record.labels, dtype=torch.int64) + self.label_offset,
            "image_id": index,
        }
        if self.with_masks:
            masks = record_masks(record)
            if masks is None:
                masks = torch.zeros((record.num_boxes, height, width), dtype=torch.uint8).numpy()
            target["masks"] = tv_tensors.Mask(torch.from_numpy(masks.astype("uint8")))
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target


def collate_detection(batch: list[tuple[torch.Tensor, dict]]) -> tuple[list[torch.Tensor], list[dict]]:
    """Lists of images and targets, as torchvision detection models take them."""
    images, targets = zip(*batch, strict=True)
    return list(images), list(targets)
