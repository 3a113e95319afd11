"""COCO-style detection metrics (Lin et al., "Microsoft COCO: Common Objects in Context", 2014).

AP averaged over IoU 0.50:0.95, AP50, AP75, AP for small/medium/large objects and average recall,
for boxes and (when predictions carry masks) instance masks, computed by faster-coco-eval, with
pycocotools available as a cross-check backend: both read the same ground truth and detections.
Values are fractions in [0, 1]; a number COCO cannot define (no ground truth in that size range)
is ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from transferdet.data.dataset import ImageRecord
from transferdet.data.formats.coco import to_coco_dict

STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
BACKENDS = ("faster_coco_eval", "pycocotools")


@dataclass
class Prediction:
    """Detections on one image: boxes x1y1x2y2 in the image's pixels, scores, dataset labels, and
    optionally masks (COCO RLE dicts, one per box)."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    masks: list[dict] | None = None


def detections_list(predictions: list[Prediction]) -> list[dict[str, Any]]:
    """COCO result dicts; image ids 1..N follow the order of the records (as ``to_coco_dict``)."""
    out = []
    for image_id, prediction in enumerate(predictions, start=1):
        for k, (box, score, label) in enumerate(
            zip(prediction.boxes, prediction.scores, prediction.labels, strict=True)
        ):
            x1, y1, x2, y2 = (float(v) for v in box)
            item = {
                "image_id": image_id,
                "category_id": int(label) + 1,
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "score": float(score),
            }
            if prediction.masks is not None:
                item["segmentation"] = prediction.masks[k]
            out.append(item)
    return out


def _load(backend: str, ground_truth: dict, detections: list[dict]) -> tuple[Any, Any, Any]:
    if backend == "faster_coco_eval":
        from faster_coco_eval import COCO, COCOeval_faster

        gt = COCO(ground_truth)
        return gt, gt.loadRes(detections), COCOeval_faster
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = COCO()
    gt.dataset = ground_truth
    gt.createIndex()
    return gt, gt.loadRes(detections), COCOeval


def coco_evaluate(
    records: list[ImageRecord],
    classes: list[str],
    predictions: list[Prediction],
    iou_type: str = "bbox",
    backend: str = "faster_coco_eval",
) -> dict[str, Any]:
    """COCO metrics of ``predictions`` (one per record, same order) against the records' boxes.

    Returns the 12 summary numbers under ``STAT_NAMES`` and ``per_class`` AP (IoU 0.50:0.95).
    """
    if len(predictions) != len(records):
        raise ValueError(f"{len(predictions)} predictions for {len(records)} images")
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r} (choose from {', '.join(BACKENDS)})")
    ground_truth = to_coco_dict(records, classes)
    for annotation in ground_truth["annotations"]:
        if iou_type == "segm" and not annotation["segmentation"]:
            raise ValueError("mask AP needs ground-truth masks")
    detections = detections_list(predictions)
    if not detections:
        return {**{name: 0.0 for name in STAT_NAMES}, "per_class": {c: 0.0 for c in classes}}
    gt, dt, evaluator_class = _load(backend, ground_truth, detections)
    evaluator = evaluator_class(gt, dt, iou_type)
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    stats = [None if s < 0 else float(s) for s in evaluator.stats[: len(STAT_NAMES)]]
    precision = np.asarray(evaluator.eval["precision"])  # [IoU, recall, class, area, max dets]
    per_class = {}
    for k, name in enumerate(classes):
        values = precision[:, :, k, 0, -1]
        values = values[values > -1]
        per_class[name] = float(values.mean()) if values.size else None
    return {**dict(zip(STAT_NAMES, stats, strict=True)), "per_class": per_class}
