"""Per-box features of a backbone on a detection dataset (DESIGN.md, after the TMOD paper).

Every ground-truth box is one sample:

- ``local``: RoI-Align of the box on the chosen feature map (7x7, sampling ratio 2, aligned),
  average-pooled to one vector;
- ``global``: the whole image's map average-pooled, repeated for each of its boxes.

Images are resized so that their longer side is ``image_size`` (aspect kept), normalised as the
weights expect, and run in batches without gradients. Labels are the boxes' classes; regression
targets are the box coordinates divided by the image width and height. How a layer turns boxes into
vectors (backbone stages, FPN levels, fpn_ms, fc7) is in :mod:`transferdet.transfer.poolers`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as F

from transferdet.data.dataset import ImageRecord
from transferdet.errors import TransferdetError
from transferdet.models.backbone import Backbone
from transferdet.models.batchnorm_folding import fold_batch_norms
from transferdet.precision import autocast
from transferdet.transfer.poolers import make_pooler

FEATURE_KINDS = ("local", "global")


@dataclass
class BoxFeatures:
    """One row per ground-truth box."""

    features: np.ndarray  # (N, D) float64
    labels: np.ndarray  # (N,) int64
    boxes: np.ndarray  # (N, 4) float64, coordinates / image size
    image_index: np.ndarray  # (N,) index into the records used
    source_probs: np.ndarray | None = None  # (N, C_s) from the checkpoint's classifier, if any


def sample_records(
    records: list[ImageRecord], max_images: int | None, max_boxes_per_class: int | None, seed: int
) -> list[ImageRecord]:
    """Images (and boxes) kept under a seed: ``max_images`` images, then at most
    ``max_boxes_per_class`` boxes of each class."""
    rng = np.random.default_rng(seed)
    records = [r for r in records if r.num_boxes > 0]
    if max_images is not None and len(records) > max_images:
        chosen = np.sort(rng.choice(len(records), size=max_images, replace=False))
        records = [records[i] for i in chosen]
    if max_boxes_per_class is None:
        return records
    labels = np.concatenate([r.labels for r in records])
    keep = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        where = np.flatnonzero(labels == label)
        if len(where) > max_boxes_per_class:
            where = rng.choice(where, size=max_boxes_per_class, replace=False)
        keep[where] = True
    out, start = [], 0
    for record in records:
        mask = keep[start : start + record.num_boxes]
        start += record.num_boxes
        if mask.any():
            out.append(record.subset(mask))
    return out


def _load(record: ImageRecord, image_size: int, mean: torch.Tensor, std: torch.Tensor) -> tuple[torch.Tensor, float]:
    with Image.open(record.path) as image:
        pixels = F.pil_to_tensor(image.convert("RGB"))
    height, width = pixels.shape[-2:]
    scale = image_size / max(height, width)
    size = [max(1, round(height * scale)), max(1, round(width * scale))]
    pixels = F.resize(pixels, size, antialias=True).float() / 255.0
    return (pixels - mean) / std, scale


def _batches(records: list[ImageRecord], size: int) -> list[list[int]]:
    """Indices of ``records`` in batches of ``size``, images of one shape together (less padding);
    in order of first appearance, so that the batches are a function of the records alone."""
    shapes = list(dict.fromkeys((r.height, r.width) for r in records))
    order = sorted(range(len(records)), key=lambda i: shapes.index((records[i].height, records[i].width)))
    return [order[i : i + size] for i in range(0, len(order), size)]


def _decoded(
    records: list[ImageRecord], batches: list[list[int]], image_size: int, mean: torch.Tensor, std: torch.Tensor
) -> Iterator[tuple[list[int], list[tuple[torch.Tensor, float]]]]:
    """Each batch with its decoded, resized images; the next batch is decoded on a second thread
    while the caller runs this one (decoding and resizing release the GIL)."""

    def load(batch: list[int]) -> list[tuple[torch.Tensor, float]]:
        return [_load(records[i], image_size, mean, std) for i in batch]

    with ThreadPoolExecutor(max_workers=1) as pool:
        upcoming = pool.submit(load, batches[0]) if batches else None
        for k, batch in enumerate(batches):
            loaded = upcoming.result()
            upcoming = pool.submit(load, batches[k + 1]) if k + 1 < len(batches) else None
            yield batch, loaded


def _padded(loaded: list[tuple[torch.Tensor, float]], pinned: bool = False) -> torch.Tensor:
    """One batch, zero-padded to its largest image; in pinned (page-locked) memory for a GPU, so
    that the copy to it runs asynchronously."""
    height = max(p.shape[1] for p, _ in loaded)
    width = max(p.shape[2] for p, _ in loaded)
    images = torch.zeros(len(loaded), 3, height, width, pin_memory=pinned)
    for j, (pixels, _) in enumerate(loaded):
        images[j, :, : pixels.shape[1], : pixels.shape[2]] = pixels
    return images


@dataclass
class _Rows:
    """The per-box arrays of one layer, gathered batch by batch (indexed by record)."""

    features: dict[int, np.ndarray] = field(default_factory=dict)
    probs: dict[int, np.ndarray] = field(default_factory=dict)

    def result(self, records: list[ImageRecord]) -> BoxFeatures:
        order = range(len(records))
        size = [np.array([r.width, r.height, r.width, r.height], dtype=np.float64) for r in records]
        return BoxFeatures(
            np.concatenate([self.features[i] for i in order]),
            np.concatenate([records[i].labels for i in order]).astype(np.int64),
            np.concatenate([records[i].boxes / size[i] for i in order]),
            np.concatenate([np.full(records[i].num_boxes, i) for i in order]),
            np.concatenate([self.probs[i] for i in order]) if self.probs else None,
        )


def _to_channels_last(network: torch.nn.Module, device: str) -> None:
    """``network`` on ``device``, its 4-D weights in channels_last format, in eval mode. torch
    converts 5-D tensors too and refuses: a network with one (LambdaNet's relative position
    embedding) has its 4-D tensors converted one by one."""
    try:
        network.to(device, memory_format=torch.channels_last)
    except RuntimeError:
        network.to(device)
        for tensor in [*network.parameters(), *network.buffers()]:
            if tensor.dim() == 4:
                tensor.data = tensor.data.contiguous(memory_format=torch.channels_last)
    network.eval()


@torch.no_grad()
def extract_layers(
    backbone: Backbone,
    records: list[ImageRecord],
    layers: Sequence[str] = ("c5",),
    kind: str = "local",
    image_size: int = 512,
    batch_size: int = 8,
    device: str | torch.device = "cpu",
    classifier: torch.nn.Module | None = None,
    progress: Callable[[int], None] | None = None,
    detector: torch.nn.Module | None = None,
    precision: str = "fp32",
) -> dict[str, BoxFeatures]:
    """Features of every box of ``records`` from each of ``layers`` (a stage of ``backbone``, or an
    FPN level, ``fpn_ms`` or ``fc7`` of a trained ``detector`` whose backbone it is), all from one
    forward pass per batch. Boxes come out in the order of ``records``. The network runs with its
    batch norms folded into its convolutions (:mod:`~transferdet.models.batchnorm_folding`), in
    channels_last memory format (faster convolutions on CPUs and GPUs) under ``precision``
    (:mod:`transferdet.precision`); features are pooled in float32 and returned in float64.
    The next batch's images are decoded on a second thread while this one runs."""
    if kind not in FEATURE_KINDS:
        raise TransferdetError(f"--features {kind!r}: choose from {', '.join(FEATURE_KINDS)}")
    if not any(r.num_boxes for r in records):
        raise TransferdetError("no boxes to compute features on")
    layers = list(dict.fromkeys(layers))
    _to_channels_last(detector if detector is not None else backbone, device)
    pool = make_pooler(fold_batch_norms(backbone.eval()), layers, kind, detector)
    mean = torch.tensor(backbone.mean).view(3, 1, 1)
    std = torch.tensor(backbone.std).view(3, 1, 1)
    rows = {layer: _Rows() for layer in layers}
    done = 0
    for batch, loaded in _decoded(records, _batches(records, batch_size), image_size, mean, std):
        boxes = [
            torch.as_tensor(records[i].boxes * scale, dtype=torch.float32, device=device)
            for i, (_, scale) in zip(batch, loaded, strict=True)
        ]
        pinned = _padded(loaded, pinned=str(device).startswith("cuda"))
        images = pinned.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        with autocast(precision, device):
            pooled = pool(images, boxes, [(p.shape[1], p.shape[2]) for p, _ in loaded])
        for layer, vectors in pooled.items():
            for j, i in enumerate(batch):
                rows[layer].features[i] = vectors[j].cpu().double().numpy()
                if classifier is not None and layer == "c5":  # a checkpoint's classifier reads pooled c5
                    rows[layer].probs[i] = torch.softmax(classifier(vectors[j]).float(), dim=1).cpu().double().numpy()
        done += len(batch)
        if progress is not None:
            progress(done)
    return {layer: rows[layer].result(records) for layer in layers}


def extract_box_features(
    backbone: Backbone, records: list[ImageRecord], layer: str = "c5", kind: str = "local", **options: Any
) -> BoxFeatures:
    """Features of every box of ``records`` from one layer (see :func:`extract_layers`)."""
    return extract_layers(backbone, records, [layer], kind, **options)[layer]
