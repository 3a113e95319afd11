"""Pretraining backbones offline on synthetic source domains, so that a zoo of differently
pretrained backbones exists without downloading anything.

The source task is supervised classification of glyph crops (one glyph of a source domain,
randomly sized, placed and rotated, on a black square), the synthetic counterpart of ImageNet
pretraining in the transfer studies DESIGN.md builds on (e.g. Kornblith, Shlens, Le, "Do Better
ImageNet Models Transfer Better?", CVPR 2019). Varying the domain, the architecture and the number
of steps gives backbones whose fine-tuned detection accuracy differs, which is what a ranking
metric must predict.

The checkpoint holds the whole classification model's ``state_dict`` under the library's own
names (``timm:NAME@FILE`` / ``torchvision:NAME@FILE`` load it like any other checkpoint) and a
``transferdet`` record of how it was made.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from transferdet.atomic import atomic_write_bytes
from transferdet.data.glyphs import SOURCES, GlyphSource, glyph_source
from transferdet.errors import TransferdetError
from transferdet.models.classifier import classification_model
from transferdet.models.specs import parse_spec


@dataclass(frozen=True)
class PretrainConfig:
    """One pretraining run: ``arch`` (a spec without weights) on ``source`` glyphs."""

    source: str
    arch: str
    steps: int = 200
    batch_size: int = 64
    crop_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.05
    seed: int = 0

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise TransferdetError(f"unknown source domain {self.source!r} (choose from {', '.join(SOURCES)})")
        if self.steps < 1 or self.batch_size < 1 or self.crop_size < 16:
            raise TransferdetError("steps and batch size must be >= 1 and the crop size >= 16 px")
        spec = parse_spec(self.arch)
        if spec.weights != "random" or spec.checkpoint is not None:
            raise TransferdetError(f"{self.arch}: give the architecture only (no @weights) to pretrain")

    @property
    def name(self) -> str:
        """A file name that says what the checkpoint is."""
        arch = parse_spec(self.arch).arch.replace(":", "-")
        return f"{arch}-{self.source}-{self.steps}steps-seed{self.seed}"


def cache_dir() -> Path:
    """The user cache folder for pretrained zoo backbones: ``$TRANSFERDET_CACHE`` if set, else
    ``$XDG_CACHE_HOME/transferdet`` (``~/.cache/transferdet``), then ``zoo/`` under it."""
    root = os.environ.get("TRANSFERDET_CACHE")
    if root is None:
        root = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "transferdet")
    return Path(root) / "zoo"


def glyph_crops(
    source: GlyphSource, rng: np.random.Generator, count: int, size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` grey crops (N x 3 x size x size in [0, 1]), one glyph each, and their labels."""
    images = np.zeros((count, size, size), dtype=np.float32)
    labels = rng.integers(len(source.classes), size=count)
    for i, label in enumerate(labels):
        glyph = source.draw(rng, int(label), int(rng.integers(size // 3, size - 2)))
        h, w = (min(s, size) for s in glyph.shape)
        y0, x0 = int(rng.integers(0, size - h + 1)), int(rng.integers(0, size - w + 1))
        images[i, y0 : y0 + h, x0 : x0 + w] = glyph[:h, :w] * float(rng.uniform(0.6, 1.0))
    pixels = torch.from_numpy(images)[:, None].expand(-1, 3, -1, -1)
    return pixels.contiguous(), torch.from_numpy(labels.astype(np.int64))


def pretrain(
    config: PretrainConfig,
    out: Path,
    device: str = "cpu",
    progress: Callable[[int, int, float], None] | None = None,
) -> dict:
    """Train ``config`` and write its checkpoint to ``out`` atomically; returns the record saved
    with it (including the accuracy on 512 held-out crops)."""
    torch.manual_seed(config.seed)
    source = glyph_source(config.source)
    model, mean, std = classification_model(config.arch, len(source.classes))
    model.to(device).train()
    shift = torch.tensor(mean, device=device).view(1, 3, 1, 1)
    scale = torch.tensor(std, device=device).view(1, 3, 1, 1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    rng = np.random.default_rng([config.seed, 1])
    warmup = max(1, config.steps // 10)
    loss_value = math.nan
    for step in range(config.steps):
        factor = min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * step / config.steps))
        for group in optimizer.param_groups:
            group["lr"] = config.lr * factor
        images, labels = glyph_crops(source, rng, config.batch_size, config.crop_size)
        logits = model((images.to(device) - shift) / scale)
        loss = nn.functional.cross_entropy(logits, labels.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_value = loss.item()
        if not math.isfinite(loss_value):
            raise TransferdetError(f"pretraining {config.name}: loss is {loss_value} at step {step + 1}; stopped")
        if progress is not None:
            progress(step + 1, config.steps, loss_value)
    model.eval()
    images, labels = glyph_crops(source, np.random.default_rng([config.seed, 2]), 512, config.crop_size)
    with torch.no_grad():
        predicted = model((images.to(device) - shift) / scale).argmax(dim=1).cpu()
    record = {
        **asdict(config),
        "classes": list(source.classes),
        "final_loss": loss_value,
        "accuracy": float((predicted == labels).float().mean()),
    }
    buffer = io.BytesIO()
    torch.save({"state_dict": {k: v.cpu() for k, v in model.state_dict().items()}, "transferdet": record}, buffer)
    atomic_write_bytes(out, buffer.getvalue())
    return record


def pretrained_path(config: PretrainConfig, folder: Path | None = None) -> Path:
    return (folder or cache_dir()) / f"{config.name}.pt"


def read_record(path: Path) -> dict:
    """The ``transferdet`` record saved with a pretrained checkpoint."""
    from transferdet.safe_load import load_torch

    state = load_torch(path)
    if not isinstance(state, dict) or "transferdet" not in state:
        raise TransferdetError(f"{path}: not a checkpoint written by `transferdet zoo pretrain`")
    return state["transferdet"]
