"""Our COCO AP equals pycocotools' on the same detections; VOC AP on cases worked by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from transferdet.data import formats
from transferdet.data.dataset import ImageRecord
from transferdet.data.masks import record_masks
from transferdet.data.synthetic import encode_mask
from transferdet.evaluate.coco_metrics import STAT_NAMES, Prediction, coco_evaluate
from transferdet.evaluate.voc_ap import average_precision, voc_evaluate
from transferdet.models.backbones import build_backbone
from transferdet.models.detectors import DetectorConfig, build_detector


def noisy_predictions(records, num_classes, seed=0, with_masks=False):
    """Ground truth jittered, some boxes missed, relabelled or duplicated, false positives added
    (also on images without ground truth), scores random: AP strictly between 0 and 1."""
    rng = np.random.default_rng(seed)
    predictions = []
    for record in records:
        boxes, scores, labels, masks = [], [], [], []
        gt_masks = record_masks(record) if with_masks else None
        for k, (box, label) in enumerate(zip(record.boxes, record.labels, strict=True)):
            if rng.random() < 0.15:
                continue
            w, h = box[2] - box[0], box[3] - box[1]
            jitter = rng.normal(0, 0.08, 4) * np.array([w, h, w, h])
            boxes.append(box + jitter)
            scores.append(rng.uniform(0.3, 1.0))
            labels.append(label if rng.random() > 0.1 else rng.integers(num_classes))
            if with_masks:
                masks.append(encode_mask(np.roll(gt_masks[k], int(rng.integers(-2, 3)), axis=1)))
        for _ in range(rng.integers(0, 3)):
            x, y = rng.uniform(0, record.width * 0.8), rng.uniform(0, record.height * 0.8)
            size = rng.uniform(10, 60)
            boxes.append(np.array([x, y, x + size, y + size]))
            scores.append(rng.uniform(0.0, 0.6))
            labels.append(rng.integers(num_classes))
            if with_masks:
                empty = np.zeros((record.height, record.width), dtype=bool)
                empty[int(y) : int(y + size), int(x) : int(x + size)] = True
                masks.append(encode_mask(empty))
        predictions.append(
            Prediction(
                np.array(boxes, dtype=np.float64).reshape(-1, 4),
                np.array(scores),
                np.array(labels, dtype=np.int64),
                masks if with_masks else None,
            )
        )
    return predictions


def assert_backends_agree(records, classes, predictions, iou_type):
    ours = coco_evaluate(records, classes, predictions, iou_type, backend="faster_coco_eval")
    reference = coco_evaluate(records, classes, predictions, iou_type, backend="pycocotools")
    for name in STAT_NAMES:
        if reference[name] is None:
            assert ours[name] is None, name
        else:
            assert ours[name] == pytest.approx(reference[name], abs=1e-4), name
    for name, value in reference["per_class"].items():
        assert (ours["per_class"][name] is None) == (value is None)
        if value is not None:
            assert ours["per_class"][name] == pytest.approx(value, abs=1e-4), name
    return ours


def test_box_ap_matches_pycocotools_on_chess_with_an_empty_image(chess):
    dataset = formats.read(chess)
    records = dataset.records("test")
    assert any(r.num_boxes == 0 for r in records)  # the test split's image without ground truth
    predictions = noisy_predictions(records, len(dataset.classes))
    empty = [r.num_boxes for r in records].index(0)
    assert len(predictions[empty].boxes) > 0  # false positives on the image without ground truth
    ours = assert_backends_agree(records, dataset.classes, predictions, "bbox")
    assert 0.2 < ours["AP"] < 0.95 and ours["AP50"] > ours["AP75"]


def test_mask_ap_matches_pycocotools(synthetic):
    dataset = formats.read(synthetic)
    records = dataset.records("test")
    predictions = noisy_predictions(records, len(dataset.classes), seed=1, with_masks=True)
    ours = assert_backends_agree(records, dataset.classes, predictions, "segm")
    assert 0.1 < ours["AP"] < 0.95


def test_model_predictions_match_pycocotools(synthetic):
    """Raw outputs of a real (untrained) FCOS on synthetic images, plus an image without objects."""
    dataset = formats.read(synthetic)
    records = dataset.records("test")[:6]
    records.append(ImageRecord("blank", "blank.png", records[0].path, records[0].width, records[0].height))
    torch.manual_seed(0)
    model = build_detector(build_backbone("timm:resnet18"), DetectorConfig("fcos", len(dataset.classes), 128, 128))
    model.eval()
    from PIL import Image
    from torchvision.transforms.v2 import functional as F

    outputs = []
    with torch.no_grad():
        for record in records:
            with Image.open(record.path) as image:
                pixels = F.to_dtype(F.pil_to_tensor(image.convert("RGB")), torch.float32, scale=True)
            out = model([pixels])[0]
            outputs.append(
                Prediction(out["boxes"].double().numpy(), out["scores"].double().numpy(), out["labels"].numpy())
            )
    assert sum(len(p.boxes) for p in outputs) > 0
    assert_backends_agree(records, dataset.classes, outputs, "bbox")


def test_voc_ap_by_hand():
    record = ImageRecord(1, "a.png", None, 100, 100, np.array([[0, 0, 10, 10], [50, 50, 60, 60]]), np.array([0, 0]))
    # three detections: a hit (0.9), a miss (0.8), a second hit (0.7): precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1
    prediction = Prediction(
        np.array([[0, 0, 10, 10], [80, 80, 90, 90], [50, 50, 60, 61]], dtype=float),
        np.array([0.9, 0.8, 0.7]),
        np.array([0, 0, 0]),
    )
    eleven = voc_evaluate([record], ["cat"], [prediction])["per_class"]["cat"]
    assert eleven == pytest.approx((6 * 1.0 + 5 * (2 / 3)) / 11)
    area = voc_evaluate([record], ["cat"], [prediction], eleven_point=False)["per_class"]["cat"]
    assert area == pytest.approx(0.5 * 1.0 + 0.5 * (2 / 3))
    perfect = Prediction(record.boxes.astype(float), np.array([0.9, 0.8]), np.array([0, 0]))
    assert voc_evaluate([record], ["cat", "dog"], [perfect]) == {"AP50": 1.0, "per_class": {"cat": 1.0, "dog": None}}
    assert average_precision(np.array([0.5]), np.array([1.0]), eleven_point=True) == pytest.approx(6 / 11)
