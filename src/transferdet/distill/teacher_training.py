"""The classification teacher of classifier-to-detector distillation (DESIGN.md): an image
classifier trained on crops of the ground-truth boxes, each enlarged by a context margin and
resized to a square (112 px by default), reporting its accuracy on the test split's crops.

It writes a teacher folder (:class:`~transferdet.runs.TeacherDir`): the classification model's
``state_dict`` under the library's own names, and its record (architecture, classes, crop
settings, accuracy).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from transferdet.data.dataset import ImageRecord
from transferdet.data.options import DataArgs
from transferdet.data.split import held_out_split, training_split
from transferdet.errors import TransferdetError
from transferdet.models.classifier import classification_model
from transferdet.models.specs import parse_spec
from transferdet.runs import TeacherDir


@dataclass(frozen=True)
class TeacherConfig:
    arch: str  # ARCH[@WEIGHTS]: the weights initialise the classifier's body
    crop_size: int = 112
    margin: float = 0.2  # context added on each side, as a fraction of the box's width/height
    epochs: int = 8
    batch_size: int = 32
    lr: float = 2e-3
    flip: float = 0.5  # horizontal flip probability (0 where a mirror image means another class)
    seed: int = 0


def box_crop(image: Image.Image, box: np.ndarray, margin: float, size: int) -> np.ndarray:
    """The box enlarged by ``margin`` of its size on each side (clipped to the image), resized to
    ``size`` x ``size``: (3, size, size) uint8."""
    x1, y1, x2, y2 = box
    dx, dy = margin * (x2 - x1), margin * (y2 - y1)
    region = (max(0.0, x1 - dx), max(0.0, y1 - dy), min(image.width, x2 + dx), min(image.height, y2 + dy))
    patch = image.crop(tuple(int(round(v)) for v in region)).resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(patch, dtype=np.uint8).transpose(2, 0, 1)


def crops_of(records: list[ImageRecord], margin: float, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every box's crop (N, 3, size, size) uint8 and its label."""
    pixels, labels = [], []
    for record in records:
        with Image.open(record.path) as opened:
            image = opened.convert("RGB")
        for box, label in zip(record.boxes, record.labels, strict=True):
            pixels.append(box_crop(image, box, margin, size))
            labels.append(int(label))
    if not pixels:
        raise TransferdetError("no boxes to crop")
    return torch.from_numpy(np.stack(pixels)), torch.tensor(labels)


def _initialised(config: TeacherConfig, num_classes: int) -> tuple[nn.Module, tuple, tuple]:
    spec = parse_spec(config.arch)
    model, mean, std = classification_model(spec.arch, num_classes)
    if spec.checkpoint is not None:
        from transferdet.models.backbones import matched_weights

        loaded, _ = matched_weights(spec)
        shapes = {k: v.shape for k, v in model.state_dict().items()}
        model.load_state_dict({k: v for k, v in loaded.items() if shapes.get(k) == v.shape}, strict=False)
    return model, mean, std


def train_teacher(
    data: Path,
    config: TeacherConfig,
    out: Path,
    device: str = "cpu",
    progress: Callable[[int, int, float], None] | None = None,
    data_args: DataArgs | None = None,
) -> dict:
    """Train the teacher on ``data``'s training crops (read as ``data_args`` say); returns (and writes) its record."""
    data_args = data_args or DataArgs()
    dataset = data_args.load(data, seed=config.seed)
    train_split = training_split(dataset, data_args.split)
    test_split = held_out_split(dataset, besides=train_split)
    train_x, train_y = crops_of(dataset.records(train_split), config.margin, config.crop_size)
    torch.manual_seed(config.seed)
    model, mean, std = _initialised(config, len(dataset.classes))
    model.to(device).train()
    shift = torch.tensor(mean, device=device).view(1, 3, 1, 1)
    scale = torch.tensor(std, device=device).view(1, 3, 1, 1)

    def prepare(pixels: torch.Tensor) -> torch.Tensor:
        return (pixels.to(device).float() / 255.0 - shift) / scale

    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.05)
    steps_per_epoch = math.ceil(len(train_x) / config.batch_size)
    total = config.epochs * steps_per_epoch
    generator = torch.Generator().manual_seed(config.seed)
    step = 0
    for _ in range(config.epochs):
        for batch in torch.randperm(len(train_x), generator=generator).split(config.batch_size):
            for group in optimizer.param_groups:
                group["lr"] = config.lr * 0.5 * (1 + math.cos(math.pi * step / total))
            images = prepare(train_x[batch])
            flip = torch.rand(len(batch), generator=generator) < config.flip
            images[flip] = images[flip].flip(-1)
            loss = nn.functional.cross_entropy(model(images), train_y[batch].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            if progress is not None:
                progress(step, total, loss.item())
    model.eval()
    record = {**asdict(config), "classes": list(dataset.classes), "train_crops": len(train_x)}
    if test_split is not None:
        test_x, test_y = crops_of(dataset.records(test_split), config.margin, config.crop_size)
        with torch.no_grad():
            predicted = torch.cat([model(prepare(b)).argmax(1).cpu() for b in test_x.split(128)])
        record.update(
            test_split=test_split, test_crops=len(test_x), accuracy=float((predicted == test_y).float().mean())
        )
    TeacherDir(out).write({k: v.cpu() for k, v in model.state_dict().items()}, record)
    return record
