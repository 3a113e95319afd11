"""AP50 from per-image evaluation records (evaluate/image_records.py): equal to pycocotools' AP50 on
real bccd images, on the images as they are and on a resample of them (images repeated, evaluated by
pycocotools as a dataset of those copies); the paired bootstrap of two detectors' difference."""

from __future__ import annotations

import numpy as np
import pytest

from transferdet.evaluate.coco_metrics import Prediction, coco_evaluate
from transferdet.evaluate.image_records import ap50, match_records, paired_difference


def _noisy(records, rng: np.random.Generator, jitter: float) -> list[Prediction]:  # noqa: ANN001
    """Predictions near the ground truth (jittered, some labels wrong, scores random) plus false positives."""
    out = []
    for record in records:
        boxes = record.boxes + rng.normal(0, jitter, record.boxes.shape)
        labels = np.where(rng.random(len(boxes)) < 0.2, rng.integers(0, 3, len(boxes)), record.labels)
        extra = rng.uniform(0, 200, (3, 2))
        fp = np.hstack([extra, extra + rng.uniform(10, 60, (3, 2))])
        out.append(Prediction(np.vstack([boxes, fp]), rng.random(len(boxes) + 3),
                              np.concatenate([labels, rng.integers(0, 3, 3)])))  # fmt: skip
    return out


@pytest.fixture
def evaluated(bccd):  # noqa: ANN001, ANN201
    from transferdet.data import formats

    dataset = formats.read(bccd)
    records = dataset.records(next(s for s in ("val", "valid", "test") if s in dataset.splits))[:24]
    rng = np.random.default_rng(0)
    return records, dataset.classes, _noisy(records, rng, 4.0), _noisy(records, rng, 12.0)


def test_ap50_of_the_records_is_pycocotools_ap50(evaluated):
    records, classes, good, _ = evaluated
    expected = coco_evaluate(records, classes, good, backend="pycocotools")["AP50"]
    assert ap50(match_records(records, classes, good)) == pytest.approx(expected, abs=1e-12)
    assert 0.2 < expected < 0.95  # neither trivial nor empty


def test_a_resample_is_the_ap50_of_a_dataset_of_those_copies(evaluated):
    from dataclasses import replace

    records, classes, good, _ = evaluated
    counts = np.bincount(np.random.default_rng(3).integers(0, len(records), len(records)), minlength=len(records))
    copies = [(replace(r, image_id=f"{r.image_id}-{c}"), p) for r, p, n in zip(records, good, counts, strict=True)
              for c in range(n)]  # fmt: skip
    expected = coco_evaluate([r for r, _ in copies], classes, [p for _, p in copies], backend="pycocotools")["AP50"]
    assert ap50(match_records(records, classes, good), counts) == pytest.approx(expected, abs=1e-12)


def test_the_paired_bootstrap_holds_zero_for_one_detector_and_not_for_a_far_better_one(evaluated):
    records, classes, good, poor = evaluated
    a, b = match_records(records, classes, good), match_records(records, classes, poor)
    same, spread = paired_difference(a, a, count=50)
    assert (same.value, same.low, same.high, spread) == (0.0, 0.0, 0.0, 0.0)
    gap, spread = paired_difference(a, b, count=200)
    assert gap.value == pytest.approx(ap50(a) - ap50(b)) and gap.low > 0 and spread > 0
