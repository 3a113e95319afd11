"""Classifier-to-detector distillation wired into torchvision detectors (DESIGN.md).

The teacher (:class:`~transferdet.distill.teacher.Teacher`) is the classifier written by
``transferdet distill teacher``: it gives the class logits of every ground-truth box's crop
(context margin, crop size and normalisation as it was trained with) and its stem features (its
first feature map). :class:`Distiller` attaches the two distillation terms of
:mod:`transferdet.distill.losses` to a detector's own positives, as each family matches them:

- RetinaNet and FCOS (sigmoid classifiers): the anchors/points the head's loss matches to a box
  (``head.compute_loss``'s ``matched_idxs``), boxes decoded with the model's box coder;
- SSD (softmax with background): the default boxes its loss matches (``compute_loss``);
- Faster/Mask R-CNN (softmax with background): the sampled proposals labelled foreground by the
  RoI heads (``select_training_samples``), boxes decoded from the ground-truth class's deltas.

Before each forward pass the training loop calls :meth:`Distiller.annotate`, which stores the
teacher's logits of each image's boxes in its target dict (torchvision's transform carries extra
target keys through); the wrapped loss adds ``distill_cls`` and ``distill_loc`` (already weighted)
to the detector's loss dictionary. Nothing is saved with the student: its checkpoint is a plain
detector's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from transferdet.distill.losses import localization_distillation, sigmoid_distillation, softmax_distillation
from transferdet.distill.teacher import Teacher
from transferdet.errors import TransferdetError

TEACHER_LOGITS = "teacher_logits"  # the target key carrying each box's teacher logits
_ROWS = ("student_logits", "teacher_logits", "predicted_boxes", "target_boxes", "image_index")  # terms' arguments


@dataclass(frozen=True)
class DistillSettings:
    """``--distill-from`` and its weights (DESIGN.md: 0.4, 0.15, temperature 2)."""

    teacher: Path
    cls_weight: float = 0.4
    loc_weight: float = 0.15
    temperature: float = 2.0

    def __post_init__(self) -> None:
        if self.cls_weight < 0 or self.loc_weight < 0:
            raise TransferdetError("distillation weights must be >= 0")
        if self.temperature <= 0:
            raise TransferdetError("--distill-temperature must be > 0")


class Distiller:
    """Adds the distillation terms to a torchvision detector's losses while installed."""

    def __init__(self, model: nn.Module, teacher: Teacher, settings: DistillSettings, classes: list[str]) -> None:
        if list(classes) != list(teacher.classes):
            raise TransferdetError(
                f"{settings.teacher}: the teacher's classes {teacher.classes} differ from the data's {list(classes)}"
            )
        self.model, self.teacher, self.settings = model, teacher, settings
        self._images: torch.Tensor | None = None  # the detector's transformed batch, normalised
        self._removers: list[Callable[[], None]] = []
        self._stash: dict = {}
        self._logits: dict[tuple[int, bytes], torch.Tensor] = {}  # see annotate

    # --- the training loop's side ----------------------------------------------------------------

    def annotate(self, images: list[torch.Tensor], targets: list[dict]) -> None:
        """Store each image's boxes' teacher logits in its target (in place).

        The logits are remembered per image and box positions: training augmentation here is
        geometric (a flip moves the boxes, so a flipped image is another key), the teacher is frozen
        and each image's crops go through it alone, so a later epoch gets the very same numbers
        without the teacher's forward pass (its main cost)."""
        for image, target in zip(images, targets, strict=True):
            key = (int(target["image_id"]), target["boxes"].detach().cpu().numpy().tobytes())
            if key not in self._logits:
                self._logits[key] = self.teacher.crop_logits(image, target["boxes"])
            target[TEACHER_LOGITS] = self._logits[key]

    def install(self) -> Distiller:
        model = self.model
        kind = model.detector_kind
        self._hook(model.transform, self._keep_images)
        if kind in ("retinanet", "fcos"):
            self._wrap(model.head, "compute_loss", self._dense_loss(softmax=False))
        elif kind == "ssd":
            self._wrap(model, "compute_loss", self._dense_loss(softmax=True))
        else:  # the R-CNN family
            heads = model.roi_heads
            self._wrap(heads, "select_training_samples", self._keep_samples)
            self._hook(heads.box_predictor, self._keep_predictions)
            self._hook(heads, self._add_roi_terms)
        return self

    def remove(self) -> None:
        for remove in reversed(self._removers):
            remove()
        self._removers.clear()

    # --- plumbing ----------------------------------------------------------------------------------

    def _hook(self, module: nn.Module, hook: Callable) -> None:
        handle = module.register_forward_hook(hook)
        self._removers.append(handle.remove)

    def _wrap(self, owner: object, name: str, make: Callable[[Callable], Callable]) -> None:
        original = getattr(owner, name)
        setattr(owner, name, make(original))
        self._removers.append(lambda: delattr(owner, name))

    def _keep_images(self, module: nn.Module, inputs: tuple, output: tuple) -> None:
        if module.training:
            self._images = output[0].tensors

    def _stem(self, images: torch.Tensor) -> torch.Tensor:
        """The teacher's stem on the detector's normalised batch (back to [0, 1] pixels first)."""
        transform = self.model.transform
        mean = torch.tensor(transform.image_mean, device=images.device).view(1, 3, 1, 1)
        std = torch.tensor(transform.image_std, device=images.device).view(1, 3, 1, 1)
        return self.teacher.stem_features(images * std + mean)

    def terms(
        self,
        student_logits: torch.Tensor,
        teacher_logits: torch.Tensor,
        predicted_boxes: torch.Tensor,
        target_boxes: torch.Tensor,
        image_index: torch.Tensor,
        softmax: bool,
    ) -> dict[str, torch.Tensor]:
        """The weighted terms over the positives (rows of each argument)."""
        settings = self.settings
        if softmax:
            cls = softmax_distillation(student_logits, teacher_logits, settings.temperature, background_index=0)
        else:
            cls = sigmoid_distillation(student_logits, teacher_logits, settings.temperature)
        loc = localization_distillation(self._images, predicted_boxes, target_boxes, image_index, self._stem)
        return {"distill_cls": settings.cls_weight * cls, "distill_loc": settings.loc_weight * loc}

    # --- per family --------------------------------------------------------------------------------

    def _dense_loss(self, softmax: bool) -> Callable[[Callable], Callable]:
        """RetinaNet/FCOS ``head.compute_loss`` and SSD ``compute_loss``: (targets, head_outputs,
        anchors, matched_idxs) -> losses."""

        def make(original: Callable) -> Callable:
            def compute_loss(targets, head_outputs, anchors, matched_idxs):
                losses = original(targets, head_outputs, anchors, matched_idxs)
                rows: dict[str, list[torch.Tensor]] = {name: [] for name in _ROWS}
                for i, (target, matches) in enumerate(zip(targets, matched_idxs, strict=True)):
                    positive = torch.where(matches >= 0)[0]
                    boxes = self._decode(head_outputs["bbox_regression"][i][positive], anchors[i][positive])
                    rows["student_logits"].append(head_outputs["cls_logits"][i][positive])
                    rows["teacher_logits"].append(target[TEACHER_LOGITS][matches[positive]])
                    rows["predicted_boxes"].append(boxes)
                    rows["target_boxes"].append(target["boxes"][matches[positive]])
                    rows["image_index"].append(torch.full_like(positive, i))
                stacked = {name: torch.cat(parts) for name, parts in rows.items()}
                return {**losses, **self.terms(**stacked, softmax=softmax)}

            return compute_loss

        return make

    def _decode(self, deltas: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
        coder = self.model.box_coder
        if hasattr(coder, "decode_single"):  # BoxCoder (RetinaNet, SSD)
            return coder.decode_single(deltas, anchors)
        return coder.decode(deltas, anchors)  # BoxLinearCoder (FCOS)

    def _keep_samples(self, original: Callable) -> Callable:
        def select_training_samples(proposals, targets):
            proposals, matched_idxs, labels, regression_targets = original(proposals, targets)
            self._stash = {"proposals": proposals, "matched": matched_idxs, "labels": labels, "targets": targets}
            return proposals, matched_idxs, labels, regression_targets

        return select_training_samples

    def _keep_predictions(self, module: nn.Module, inputs: tuple, output: tuple) -> None:
        if module.training:
            self._stash["class_logits"], self._stash["box_regression"] = output

    def _add_roi_terms(self, module: nn.Module, inputs: tuple, output: tuple) -> tuple | None:
        if not module.training or "class_logits" not in self._stash:
            return None
        result, losses = output
        stash, self._stash = self._stash, {}
        labels = torch.cat(stash["labels"])
        positive = torch.where(labels > 0)[0]
        proposals = torch.cat(stash["proposals"])[positive]
        # image of each row; rows are grouped by image, as ``teacher`` and ``target_boxes`` below
        index = torch.cat([torch.full_like(m, i) for i, m in enumerate(stash["matched"])])[positive]
        matched = torch.cat(stash["matched"])[positive]
        targets = stash["targets"]
        teacher = torch.cat([targets[i][TEACHER_LOGITS][matched[index == i]] for i in range(len(targets))])
        target_boxes = torch.cat([targets[i]["boxes"][matched[index == i]] for i in range(len(targets))])
        regression = stash["box_regression"][positive].view(len(positive), stash["class_logits"].shape[1], 4)
        deltas = regression[torch.arange(len(positive), device=labels.device), labels[positive]]
        predicted = module.box_coder.decode_single(deltas, proposals)
        terms = self.terms(stash["class_logits"][positive], teacher, predicted, target_boxes, index, softmax=True)
        return result, {**losses, **terms}
