"""Classifier-to-detector distillation terms (DESIGN.md): a classification teacher, trained on
crops of ground-truth boxes, guides a detector student.

- Classification: for each positive anchor or proposal, the KL divergence from the teacher's
  class distribution on the matched ground-truth crop to the student's, both softened by a
  temperature T and the divergence scaled by T^2 (Hinton, Vinyals, Dean, "Distilling the Knowledge
  in a Neural Network", 2015). Softmax students (Faster R-CNN, SSD) have a background column, to
  which the teacher gives zero probability; sigmoid students (RetinaNet, FCOS) are compared class
  by class as two-way distributions (p_c, 1 - p_c).
- Localization: the image cropped at the predicted box and at its ground-truth box by a
  differentiable spatial transformer (Jaderberg et al., "Spatial Transformer Networks", NeurIPS
  2015), raw pixels pooled to 4x4 and the teacher's stem features to 8x8, L1 between the two; the
  gradient reaches the box regression through the crop's sampling grid.

These are pure functions of tensors; wiring them into each detector's positives is the training
loop's job.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

PIXEL_POOL = 4
STEM_POOL = 8
CROP_SIZE = 16


def softmax_distillation(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: float = 2.0,
    background_index: int | None = 0,
) -> torch.Tensor:
    """T^2 KL(teacher || student), averaged over positives. ``student_logits`` is (P, C + 1) with a
    background column at ``background_index`` (or (P, C) with ``None``); ``teacher_logits`` (P, C)."""
    if len(student_logits) == 0:
        return student_logits.sum() * 0.0
    teacher = F.softmax(teacher_logits.detach().float() / temperature, dim=1)
    if background_index is not None:
        zeros = teacher.new_zeros(len(teacher), 1)
        teacher = torch.cat([teacher[:, :background_index], zeros, teacher[:, background_index:]], dim=1)
    log_student = F.log_softmax(student_logits.float() / temperature, dim=1)
    # xlogy: a zero-probability teacher entry contributes nothing, whatever the student says there
    cross = torch.where(teacher > 0, teacher * log_student, torch.zeros_like(log_student))
    divergence = (torch.xlogy(teacher, teacher) - cross).sum(dim=1)
    return temperature**2 * divergence.mean()


def sigmoid_distillation(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 2.0
) -> torch.Tensor:
    """T^2 sum over classes of KL((q_c, 1 - q_c) || (p_c, 1 - p_c)), averaged over positives, with
    q = softmax(teacher / T) and p_c = sigmoid(student_c / T); both (P, C)."""
    if len(student_logits) == 0:
        return student_logits.sum() * 0.0
    q = F.softmax(teacher_logits.detach().float() / temperature, dim=1)
    scaled = student_logits.float() / temperature
    log_p, log_not_p = F.logsigmoid(scaled), F.logsigmoid(-scaled)
    divergence = torch.xlogy(q, q) + torch.xlogy(1 - q, 1 - q) - q * log_p - (1 - q) * log_not_p
    return temperature**2 * divergence.sum(dim=1).mean()


def crop(maps: torch.Tensor, boxes: torch.Tensor, image_index: torch.Tensor, image_size: tuple[int, int], size: int):
    """Crops (P, C, size, size) of ``maps`` (N, C, h, w covering images of ``image_size`` = (H, W))
    at ``boxes`` (P, 4, x1 y1 x2 y2 in image pixels), bilinear and differentiable in the boxes.

    Each image's crops are sampled in one call from that image alone (its sampling grids stacked),
    so the maps are never copied once per box."""
    height, width = image_size
    x1, y1, x2, y2 = boxes.unbind(dim=1)
    theta = torch.zeros(len(boxes), 2, 3, dtype=maps.dtype, device=maps.device)
    theta[:, 0, 0] = (x2 - x1) / width
    theta[:, 0, 2] = (x1 + x2) / width - 1
    theta[:, 1, 1] = (y2 - y1) / height
    theta[:, 1, 2] = (y1 + y2) / height - 1
    grid = F.affine_grid(theta, [len(boxes), maps.shape[1], size, size], align_corners=False)
    pieces, order = [], []
    for image in image_index.unique().tolist():
        chosen = (image_index == image).nonzero().squeeze(1)
        stacked = grid[chosen].reshape(1, len(chosen) * size, size, 2)
        sampled = F.grid_sample(maps[image : image + 1], stacked, mode="bilinear", align_corners=False)
        pieces.append(sampled.view(maps.shape[1], len(chosen), size, size).transpose(0, 1))
        order.append(chosen)
    position = torch.empty_like(image_index)
    position[torch.cat(order)] = torch.arange(len(boxes), device=boxes.device)
    return torch.cat(pieces)[position]


def localization_distillation(
    images: torch.Tensor,
    predicted_boxes: torch.Tensor,
    target_boxes: torch.Tensor,
    image_index: torch.Tensor,
    teacher_stem: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Mean L1 between the crops at ``predicted_boxes`` and at ``target_boxes`` (both (P, 4) in the
    pixels of ``images``, N x 3 x H x W): raw pixels pooled to 4x4, plus the teacher's stem
    features pooled to 8x8 when ``teacher_stem`` is given."""
    if len(predicted_boxes) == 0:
        return predicted_boxes.sum() * 0.0
    size = tuple(images.shape[-2:])
    target_boxes = target_boxes.detach()

    def pooled(maps: torch.Tensor, boxes: torch.Tensor, out: int) -> torch.Tensor:
        return F.adaptive_avg_pool2d(crop(maps, boxes, image_index, size, CROP_SIZE), out)

    loss = F.l1_loss(pooled(images, predicted_boxes, PIXEL_POOL), pooled(images, target_boxes, PIXEL_POOL))
    if teacher_stem is not None:
        with torch.no_grad():
            stem = teacher_stem(images)
        loss = loss + F.l1_loss(pooled(stem, predicted_boxes, STEM_POOL), pooled(stem, target_boxes, STEM_POOL))
    return loss
