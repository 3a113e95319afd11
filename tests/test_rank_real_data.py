"""Ranking never dies on real data: a metric that cannot score says why and leaves the others, a
class with one box is left out only of the metrics that need two, single-class data is ranked
against background RoIs, and the feature cache follows the annotations."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from conftest import SHARED, require_shared
from transferdet import metrics
from transferdet.data.dataset import ImageRecord
from transferdet.transfer.background import MAX_IOU, with_background
from transferdet.transfer.rank import DEFAULT_METRICS, RankSettings, rank
from transferdet.transfer.scoring import score_features

DEFAULT = [m for m in DEFAULT_METRICS if m not in ("leep", "nce")]  # rank's default order, no source classifier
POTHOLE = SHARED / "datasets" / "pothole"


def _features(counts: list[int], dim: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(counts)), counts)
    features = rng.normal(size=(len(labels), dim)) + labels[:, None]
    return features, labels, rng.normal(size=(len(labels), 4))


def test_a_class_with_one_box_is_left_out_of_the_per_class_metrics_only():
    features, labels, targets = _features([30, 1, 25])
    outcomes = score_features(features, labels, targets, None, DEFAULT, ["cat", "bishop", "dog"])
    assert all(o.status == "ok" for o in outcomes.values())
    for name in ("sfda", "gbc", "etran"):
        assert outcomes[name].note == f"{name}: class 'bishop' has 1 box(es); left out of this metric"
    keep = labels != 1
    assert outcomes["sfda"].score == pytest.approx(metrics.sfda(features[keep], labels[keep]), rel=1e-12)
    assert outcomes["logme"].note is None  # the Gram metrics use every box
    assert outcomes["logme"].score == pytest.approx(metrics.logme(features, labels), rel=1e-12)
    with pytest.raises(metrics.MetricInputError, match="a class has 1 sample"):
        metrics.sfda(features, labels)  # what stopped `rank` before


def test_one_class_fails_the_classification_metrics_with_a_reason_and_keeps_box_regression():
    features, labels, targets = _features([40])
    names = [*DEFAULT, "logme_regression"]
    outcomes = score_features(features, labels, targets, None, names, ["pothole"])
    regression = metrics.logme_regression(features, targets)
    assert outcomes["logme_regression"].score == pytest.approx(regression, rel=1e-12)
    # the label-free parts: TLogME's box-regression half, ETran's energy and regression terms
    assert outcomes["tlogme"].score == pytest.approx(regression, rel=1e-12)
    energy_and_regression = metrics.etran_energy(features) + metrics.etran_regression(features, targets)
    assert outcomes["etran"].score == pytest.approx(energy_and_regression, rel=1e-12)
    assert outcomes["tlogme"].note == (
        "tlogme: a single class ('pothole'); its classification half is left out (the box-regression half only)"
    )
    assert outcomes["etran"].note.startswith("etran: a single class ('pothole'); its LDA term is left out")
    failed = [n for n in names if n not in ("logme_regression", "tlogme", "etran")]
    assert all(outcomes[n].score is None and outcomes[n].status == "failed" for n in failed)
    assert all(outcomes[n].reason.startswith(f"{n}: ") and "class" in outcomes[n].reason for n in failed)
    # two classes where the only other one has a single box: too little left for the per-class ones
    features, labels, targets = _features([30, 1])
    sfda = score_features(features, labels, targets, None, ["sfda"], ["a", "b"])["sfda"]
    assert (
        sfda.score is None and sfda.reason == "sfda: class 'b' has 1 box(es); needs 2 per class in at least two classes"
    )


def _record(boxes: list[list[float]], width: int = 200, height: int = 100) -> ImageRecord:
    return ImageRecord(0, "a.png", SHARED / "a.png", width, height, np.array(boxes), np.zeros(len(boxes), dtype=int))


def test_background_boxes_avoid_the_objects_and_follow_their_sizes():
    records = [_record([[10, 10, 50, 40], [120, 50, 160, 80]]), _record([[0, 0, 40, 30]])]
    first = with_background(records, 3, label=1, seed=5)
    again = with_background(records, 3, label=1, seed=5)
    other = with_background(records, 3, label=1, seed=6)
    for record, source in zip(first, records, strict=True):
        extra = record.boxes[record.labels == 1]
        assert len(extra) == 3 and (record.labels[: source.num_boxes] == 0).all()
        assert (
            (extra[:, :2] >= 0).all() and (extra[:, 2] <= source.width).all() and (extra[:, 3] <= source.height).all()
        )
        for box in extra:  # IoU with every object below the threshold
            x1, y1 = np.maximum(box[:2], source.boxes[:, :2]).T
            x2, y2 = np.minimum(box[2:], source.boxes[:, 2:]).T
            inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
            union = np.prod(box[2:] - box[:2]) + np.prod(source.boxes[:, 2:] - source.boxes[:, :2], axis=1) - inter
            assert (inter / union < MAX_IOU).all()
        sizes = np.round((extra[:, 2:] - extra[:, :2]) / [source.width, source.height], 6)
        known = {(0.2, 0.3)}  # every object here is 20% x 30% of its image
        assert {tuple(s) for s in sizes} <= known
    assert all(np.array_equal(a.boxes, b.boxes) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a.boxes, b.boxes) for a, b in zip(first, other, strict=True))
    assert with_background(records, 0, 1, 5) is records


def test_rank_scores_every_metric_on_chess_pieces_with_its_one_box_class(chess):
    rows = rank(
        chess, ["timm:resnet10t@random"], settings=RankSettings(image_size=128, max_boxes_per_class=3, device="cpu")
    )
    assert [r["metric"] for r in rows] == [*DEFAULT, "knn", "model_size", "imagenet_top1"]  # cheap baselines last
    assert all(r["status"] == "ok" and np.isfinite(r["score"]) for r in rows), rows
    notes = {r["metric"]: r["note"] for r in rows if r["note"]}
    assert {m for m, n in notes.items() if "'bishop' has 1 box" in n} == {"sfda", "etran", "gbc", "knn"}


def test_rank_on_single_class_data_adds_background_by_default(cli, tmp_path):
    data = require_shared(POTHOLE)
    settings = RankSettings(image_size=128, max_images=8, device="cpu")
    rows = rank(data, ["timm:resnet10t@random"], settings=settings)
    assert all(r["status"] == "ok" for r in rows), rows
    result = cli("rank", "--data", data, "--models", "timm:resnet10t@random", "--max-images", 8, "--image-size", 128,
                 "--background", 0, "--device", "cpu", "--no-cache", "--out", tmp_path)  # fmt: skip
    assert result.code == 0, result.err
    scored = {r["metric"]: r for r in json.loads((tmp_path / "scores.json").read_text())}
    assert {m for m, r in scored.items() if r["status"] == "ok"} == {"tlogme", "etran", "model_size", "imagenet_top1"}
    assert all(r["score"] is None and "a single class" in r["reason"] for r in scored.values() if r["status"] != "ok")
    assert re.search(r"\* timm:resnet10t@random: (c\d: )?logme: labels: a single class", result.out), result.out


def test_the_feature_cache_follows_the_annotation_files(synthetic, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(synthetic, data)
    settings = RankSettings(image_size=64, max_images=12, device="cpu")
    before = rank(data, ["timm:resnet10t@random"], ["logme"], settings=settings, cache_dir=tmp_path / "cache")
    annotations = data / "annotations" / "instances_train.json"
    content = json.loads(annotations.read_text())
    for annotation in content["annotations"]:  # relabelled: ten digits become two classes (odd, even)
        annotation["category_id"] = content["categories"][annotation["category_id"] % 2]["id"]
    annotations.write_text(json.dumps(content))
    after = rank(data, ["timm:resnet10t@random"], ["logme"], settings=settings, cache_dir=tmp_path / "cache")
    fresh = rank(data, ["timm:resnet10t@random"], ["logme"], settings=settings)
    assert after[0]["score"] == fresh[0]["score"] != before[0]["score"]
