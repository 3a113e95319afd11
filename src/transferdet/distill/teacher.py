"""The distillation teacher as the student's training loop queries it: the crop classifier that
``transferdet distill teacher`` wrote (frozen, eval mode), giving each box crop's class logits and
the stem features of whole images."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torchvision.ops import roi_align

from transferdet.errors import TransferdetError
from transferdet.models.backbones import build_backbone
from transferdet.models.classifier import classification_model
from transferdet.models.specs import ModelSpec, parse_spec
from transferdet.runs import TeacherDir


class Teacher(nn.Module):
    """A frozen crop classifier and its stem, in eval mode."""

    def __init__(self, folder: Path, device: str | torch.device = "cpu") -> None:
        super().__init__()
        stored = TeacherDir(folder)
        record = stored.record()
        self.classes: list[str] = record["classes"]
        self.crop_size, self.margin = int(record["crop_size"]), float(record["margin"])
        arch = parse_spec(record["arch"])
        classifier, mean, std = classification_model(arch.arch, len(self.classes))
        try:
            classifier.load_state_dict(stored.state_dict())
        except RuntimeError:
            raise TransferdetError(
                f"{stored.weights_file}: does not fit {stored.path / stored.RECORD} "
                f"({arch.arch} with {len(self.classes)} classes)"
            ) from None
        self.classifier = classifier
        body = build_backbone(ModelSpec(arch.library, arch.name, str(stored.weights_file)))
        self.stem = body.truncated(body.feature_names[0])
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.to(device).eval()

    def train(self, mode: bool = True) -> Teacher:  # always in eval mode (BatchNorm statistics fixed)
        return super().train(False)

    @torch.no_grad()
    def crop_logits(self, image: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """Logits (K, C) of the crops of ``boxes`` (K, 4) in ``image`` (3, H, W, values in [0, 1]),
        each box enlarged by the margin on every side and clipped to the image, as in training."""
        if len(boxes) == 0:
            return image.new_zeros(0, len(self.classes))
        height, width = image.shape[-2:]
        extra = torch.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], dim=1).repeat(1, 2) * self.margin
        signs = torch.tensor([-1.0, -1.0, 1.0, 1.0], device=boxes.device)
        limits = torch.tensor([width, height, width, height], dtype=boxes.dtype, device=boxes.device)
        regions = torch.minimum((boxes + signs * extra).clamp(min=0), limits)
        crops = roi_align(image[None].float(), [regions.float()], self.crop_size, 1.0, 2, aligned=True)
        return self.classifier((crops - self.mean) / self.std)

    @torch.no_grad()
    def stem_features(self, images: torch.Tensor) -> torch.Tensor:
        """The stem's map of ``images`` (N, 3, H, W, values in [0, 1])."""
        return next(iter(self.stem((images - self.mean) / self.std).values()))
