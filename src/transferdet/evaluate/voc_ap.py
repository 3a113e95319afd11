"""Pascal VOC AP at IoU 0.5 (Everingham et al., "The PASCAL Visual Object Classes (VOC)
Challenge", IJCV 2010): per class, detections sorted by score are matched greedily to unmatched
ground truth of their image; AP is the VOC2007 11-point interpolated precision or, from VOC2010
on, the area under the precision envelope. Boxes are continuous coordinates (no +1 pixel
convention). A detection whose best-overlapping box is difficult (or a COCO crowd region) is
neither a true nor a false positive, and such boxes are not counted among the positives, as in
the VOC development kit.
"""

from __future__ import annotations

import numpy as np
import torch
from torchvision.ops import box_iou

from transferdet.data.dataset import ImageRecord
from transferdet.evaluate.coco_metrics import Prediction


def average_precision(recall: np.ndarray, precision: np.ndarray, eleven_point: bool = True) -> float:
    if eleven_point:
        return float(
            np.mean([precision[recall >= t].max() if (recall >= t).any() else 0.0 for t in np.linspace(0, 1, 11)])
        )
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.concatenate([[0.0], precision, [0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]  # precision envelope
    steps = np.flatnonzero(r[1:] != r[:-1])
    return float(np.sum((r[steps + 1] - r[steps]) * p[steps + 1]))


def voc_evaluate(
    records: list[ImageRecord],
    classes: list[str],
    predictions: list[Prediction],
    iou_threshold: float = 0.5,
    eleven_point: bool = True,
) -> dict:
    """``{"AP50": mean over classes with ground truth, "per_class": {name: AP or None}}``."""
    per_class: dict[str, float | None] = {}
    for label, name in enumerate(classes):
        positives = sum(int(((r.labels == label) & ~r.ignored).sum()) for r in records)
        scored = []  # (score, image index, box)
        for index, prediction in enumerate(predictions):
            for box, score in zip(
                prediction.boxes[prediction.labels == label], prediction.scores[prediction.labels == label], strict=True
            ):
                scored.append((float(score), index, box))
        if positives == 0:
            per_class[name] = None
            continue
        scored.sort(key=lambda item: -item[0])
        taken = {i: np.zeros(int((r.labels == label).sum()), dtype=bool) for i, r in enumerate(records)}
        hits = np.zeros(len(scored))
        counted = np.ones(len(scored), dtype=bool)  # False: matched an ignored box
        for d, (_, index, box) in enumerate(scored):
            record = records[index]
            mine = record.labels == label
            truth, ignored = record.boxes[mine], record.ignored[mine]
            if len(truth) == 0:
                continue
            overlaps = box_iou(
                torch.as_tensor(box[None], dtype=torch.float64), torch.as_tensor(truth, dtype=torch.float64)
            )[0].numpy()
            best = int(overlaps.argmax())
            if overlaps[best] >= iou_threshold and ignored[best]:
                counted[d] = False
            elif overlaps[best] >= iou_threshold and not taken[index][best]:
                taken[index][best] = True
                hits[d] = 1
        true_positives = np.cumsum(hits[counted])
        recall = true_positives / positives
        precision = true_positives / np.arange(1, len(true_positives) + 1)
        per_class[name] = average_precision(recall, precision, eleven_point) if len(true_positives) else 0.0
    defined = [v for v in per_class.values() if v is not None]
    return {"AP50": float(np.mean(defined)) if defined else None, "per_class": per_class}
