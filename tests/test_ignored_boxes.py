"""VOC's difficult objects and COCO's crowd regions: read, written, kept through conversions, and
ignored by evaluation as the VOC devkit and the COCO API do (checked on cases worked by hand)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from transferdet.data import formats
from transferdet.data.dataset import DetectionDataset, ImageRecord
from transferdet.data.formats.coco import to_coco_dict
from transferdet.evaluate.coco_metrics import Prediction, coco_evaluate
from transferdet.evaluate.voc_ap import voc_evaluate

OBJECT, DIFFICULT, ELSEWHERE = [10, 10, 50, 50], [60, 60, 90, 90], [0, 70, 20, 95]


def _record(flag: str | None = None, flagged: list[bool] | None = None, path: Path = Path("a.jpg")) -> ImageRecord:
    flags = {flag: np.array(flagged)} if flag else {}
    return ImageRecord(1, path.name, path, 100, 100, np.array([OBJECT, DIFFICULT], float), np.array([0, 0]), **flags)


def test_a_detection_on_a_difficult_object_counts_neither_way():
    # by score: a false positive, a detection on the difficult object, a detection on the object.
    # Ignored: FP, TP with 1 positive -> precision 0.5 at recall 1, 11-point AP 0.5. (Counted as an
    # object it would be 0.667; the difficult box dropped, its detection a false positive, 0.333.)
    prediction = Prediction(
        np.array([ELSEWHERE, DIFFICULT, OBJECT], float), np.array([0.9, 0.8, 0.7]), np.zeros(3, int)
    )
    flagged = voc_evaluate([_record("difficult", [False, True])], ["cat"], [prediction])
    assert flagged["AP50"] == pytest.approx(0.5)
    assert voc_evaluate([_record()], ["cat"], [prediction])["AP50"] == pytest.approx(2 / 3)


def test_a_detection_inside_a_crowd_region_is_ignored_by_coco_ap():
    # the crowd region is large; the first detection lies inside it (IoU with its box 0.11, but a
    # crowd region is matched by the share of the detection it covers: 1). Ignored, the other
    # detection is a perfect hit: AP 1. Were the region an object: one miss, one FP, AP about 0.25.
    crowd = ImageRecord(
        1, "a.jpg", Path("a.jpg"), 100, 100, np.array([OBJECT, [0, 0, 100, 100]], float), np.array([0, 0]),
        crowd=np.array([False, True]),
    )  # fmt: skip
    prediction = Prediction(np.array([[60, 60, 90, 90], OBJECT], float), np.array([0.9, 0.8]), np.zeros(2, int))
    assert to_coco_dict([crowd], ["person"])["annotations"][1]["iscrowd"] == 1
    metrics = coco_evaluate([crowd], ["person"], [prediction])
    assert metrics["AP50"] == pytest.approx(1.0) and metrics["AP"] == pytest.approx(1.0)
    plain = coco_evaluate([ImageRecord(**{**crowd.__dict__, "crowd": None})], ["person"], [prediction])
    assert plain["AP50"] < 0.3


@pytest.mark.parametrize(("source", "target"), [("voc", "coco"), ("coco", "voc"), ("voc", "yolo")])
def test_conversions_keep_the_flags_where_the_format_can(tmp_path, source, target):
    image = tmp_path / "a.jpg"
    Image.new("RGB", (100, 100)).save(image)
    flag = "difficult" if source == "voc" else "crowd"
    dataset = DetectionDataset(["cat"], {"train": [_record(flag, [False, True], image)]}, source)
    formats.write(dataset, tmp_path / source, source)
    formats.write(formats.read(tmp_path / source, source), tmp_path / target, target)
    (record,) = formats.read(tmp_path / target, target).records()
    expected = [False, True] if target != "yolo" else [False, False]  # YOLO has no such flag
    assert record.ignored.tolist() == expected
    if (source, target) == ("voc", "coco"):  # still difficult (trained on), not a crowd region (not trained on)
        assert record.crowd is None and record.difficult.tolist() == [False, True]
    if target == "coco":
        written = json.loads(next((tmp_path / target).rglob("*.json")).read_text())
        assert [a.get("difficult", 0) for a in written["annotations"]] == [0, 1]


def test_training_leaves_crowd_regions_out_and_keeps_difficult_objects(tmp_path):
    from transferdet.train.engine import job_data
    from transferdet.train.job import TrainJob
    from transferdet.train.recipes import load_recipe

    records = {}
    for split, flag in (("train", "crowd"), ("test", "difficult")):
        image = tmp_path / f"{split}.jpg"
        Image.new("RGB", (100, 100)).save(image)
        records[split] = [_record(flag, [False, True], image)]
    formats.write(DetectionDataset(["cat"], records, "coco"), tmp_path / "coco", "coco")
    job = TrainJob(tmp_path / "coco", "timm:resnet10t", "fcos", load_recipe("quick"), tmp_path / "run", device="cpu")
    dataset, training, _, _ = job_data(job)
    assert [r.num_boxes for r in training] == [1] and training[0].crowd is None
    assert dataset.records("test")[0].difficult.tolist() == [False, True]
