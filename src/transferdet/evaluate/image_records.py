"""AP50 from per-image evaluation records, and a paired bootstrap over images of the AP50 difference
of two detectors evaluated on the same images (the image noise select's race judges by; issue 41).

The records are COCOeval's own matching (Lin et al., "Microsoft COCO", 2014; pycocotools'
``evaluateImg``) at IoU 0.5, area "all", 100 detections per image and category: per detection its
image, class, score, whether it matched a ground truth and whether it is ignored (it matched a crowd
region); per image and class the ground truths that count. :func:`ap50` then accumulates them as
``COCOeval.accumulate`` does (the 101-point interpolated precision, classes without ground truth
left out), for any multiset of the images, so a bootstrap replicate resamples images and recomputes
no IoU (Efron & Tibshirani, "An Introduction to the Bootstrap", 1993: the percentile interval).
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass

import numpy as np

from transferdet.bench.bootstrap import Interval, interval

RECALL_POINTS = np.linspace(0.0, 1.0, 101)


@dataclass(frozen=True)
class MatchRecords:
    image: np.ndarray  # per detection, in COCOeval's order (image, then score within the image)
    category: np.ndarray
    score: np.ndarray
    matched: np.ndarray  # bool: a true positive at IoU 0.5
    ignored: np.ndarray  # bool: matched an ignored (crowd) ground truth: neither true nor false
    ground_truths: np.ndarray  # images x classes: the ground truths that count


def match_records(records: list, classes: list[str], predictions: list) -> MatchRecords:
    """The records of ``predictions`` (one per record) against the records' boxes, by pycocotools."""
    from pycocotools.cocoeval import COCOeval

    from transferdet.data.formats.coco import to_coco_dict
    from transferdet.evaluate.coco_metrics import _load, detections_list

    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress: stdout is the user's
        gt, dt, _ = _load("pycocotools", to_coco_dict(records, classes), detections_list(predictions))
        evaluator = COCOeval(gt, dt, "bbox")
        evaluator.evaluate()
    images, areas = len(evaluator.params.imgIds), len(evaluator.params.areaRng)
    columns: dict[str, list] = {k: [] for k in ("image", "category", "score", "matched", "ignored")}
    counts = np.zeros((images, len(classes)), dtype=np.int64)
    for k in range(len(classes)):
        for i in range(images):
            found = evaluator.evalImgs[k * areas * images + i]  # area "all" is the first
            if found is None:
                continue
            counts[i, k] = int(np.count_nonzero(np.asarray(found["gtIgnore"]) == 0))
            scores = np.asarray(found["dtScores"])
            columns["image"] += [i] * len(scores)
            columns["category"] += [k] * len(scores)
            columns["score"] += scores.tolist()
            columns["matched"] += (np.asarray(found["dtMatches"])[0] != 0).tolist()
            columns["ignored"] += np.asarray(found["dtIgnore"])[0].astype(bool).tolist()
    arrays = {k: np.asarray(v) for k, v in columns.items()}
    return MatchRecords(arrays["image"].astype(np.int64), arrays["category"].astype(np.int64), arrays["score"],
                        arrays["matched"].astype(bool), arrays["ignored"].astype(bool), counts)  # fmt: skip


def _class_ap(score: np.ndarray, matched: np.ndarray, positives: int) -> float:
    """One class's interpolated AP as COCOeval accumulates it (detections already without ignored ones)."""
    if len(score) == 0:
        return 0.0
    order = np.argsort(-score, kind="mergesort")
    tp = np.cumsum(matched[order]).astype(float)
    fp = np.cumsum(~matched[order]).astype(float)
    recall = tp / positives
    precision = tp / (tp + fp + np.spacing(1))
    precision = np.maximum.accumulate(precision[::-1])[::-1]  # the envelope, right to left
    at = np.searchsorted(recall, RECALL_POINTS, side="left")
    return float(np.where(at < len(precision), precision[np.minimum(at, len(precision) - 1)], 0.0).mean())


def ap50(found: MatchRecords, counts: np.ndarray | None = None) -> float:
    """AP50 over the images taken ``counts`` times each (all once by default): the mean over classes
    with ground truth of the interpolated precision at 101 recall points. NaN without ground truth."""
    counts = np.ones(len(found.ground_truths), dtype=np.int64) if counts is None else counts
    positives = (found.ground_truths * counts[:, None]).sum(axis=0)
    repeat = counts[found.image] * ~found.ignored
    aps = []
    for k in np.flatnonzero(positives > 0):
        mine = found.category == k
        times = repeat[mine]
        aps.append(_class_ap(np.repeat(found.score[mine], times), np.repeat(found.matched[mine], times), positives[k]))
    return float(np.mean(aps)) if aps else float("nan")


def paired_difference(
    a: MatchRecords, b: MatchRecords, count: int = 1000, seed: int = 0, level: float = 0.9
) -> tuple[Interval, float]:
    """AP50(a) - AP50(b) with its percentile interval over ``count`` resamples of the images (the same
    resample for both), and the replicates' standard deviation (the difference's standard error)."""
    if len(a.ground_truths) != len(b.ground_truths):
        raise ValueError("a paired bootstrap needs both evaluated on the same images")
    rng = np.random.default_rng(seed)
    images = len(a.ground_truths)
    draws = []
    for _ in range(count):
        counts = np.bincount(rng.integers(0, images, images), minlength=images)
        draws.append(ap50(a, counts) - ap50(b, counts))
    values = np.array(draws)
    return interval(ap50(a) - ap50(b), values, level), float(np.nanstd(values, ddof=1))
