"""Every detector on every kind of backbone trains one step and predicts; anchors, norms, freezing;
and real ImageNet weights make features that a random init does not."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.ops import box_iou

from transferdet.data import formats
from transferdet.data.transforms import TorchDetectionDataset, collate_detection, detection_transforms
from transferdet.models.anchors import auto_anchors, default_anchors, resized_box_shapes
from transferdet.models.backbones import build_backbone
from transferdet.models.detectors import DETECTORS, DetectorConfig, build_detector
from transferdet.models.norms import freeze_stages

BACKBONES = ("timm:resnet18", "timm:mobilenetv3_small_100", "torchvision:mobilenet_v2", "timm:convnext_atto")
SMALL_RCNN = {
    "rpn_pre_nms_top_n_train": 200,
    "rpn_post_nms_top_n_train": 64,
    "rpn_pre_nms_top_n_test": 100,
    "rpn_post_nms_top_n_test": 32,
    "box_batch_size_per_image": 32,
}


@pytest.fixture(scope="module")
def batch_records(synthetic):
    dataset = formats.read(synthetic)
    return dataset, dataset.records("train")[:2]


@pytest.mark.parametrize("kind", DETECTORS)
@pytest.mark.parametrize("spec", BACKBONES)
def test_detector_trains_one_step_and_predicts(spec, kind, batch_records):
    dataset, records = batch_records
    torch.manual_seed(0)
    extra = SMALL_RCNN if "rcnn" in kind else {}
    anchors = auto_anchors(resized_box_shapes(records, 128, 128))
    config = DetectorConfig(kind, len(dataset.classes), min_size=128, max_size=128, anchors=anchors, extra=extra)
    model = build_detector(build_backbone(spec), config)
    data = TorchDetectionDataset(
        records, detection_transforms(True, 128), with_masks=kind == "mask_rcnn_fpn", label_offset=model.label_offset
    )
    images, targets = collate_detection([data[0], data[1]])
    model.train()
    losses = model(images, targets)
    loss = sum(losses.values())
    assert torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad and p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)
    torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01).step()
    model.eval()
    with torch.no_grad():
        predictions = model(images)
    assert len(predictions) == 2
    for prediction in predictions:
        assert {"boxes", "labels", "scores"} <= prediction.keys()
        assert prediction["boxes"].shape[1] == 4
        if len(prediction["labels"]):
            low = model.label_offset
            assert prediction["labels"].min() >= low and prediction["labels"].max() < len(dataset.classes) + low
        if kind == "mask_rcnn_fpn":
            assert prediction["masks"].shape[-2:] == images[0].shape[-2:]


def best_anchor_iou(records, spec, levels=(4, 8, 16, 32, 64), size=128) -> np.ndarray:
    """For each ground-truth box, its best IoU with torchvision's anchors on a 128 px image."""
    generator = AnchorGenerator(spec.per_level(), spec.ratios_per_level())
    images = ImageList(torch.zeros(1, 3, size, size), [(size, size)])
    maps = [torch.zeros(1, 1, size // s, size // s) for s in levels]
    anchors = generator(images, maps)[0]
    boxes = torch.from_numpy(np.concatenate([r.boxes for r in records])).float()
    return box_iou(boxes, anchors).max(dim=1).values.numpy()


def test_auto_anchors_match_small_objects(synthetic):
    records = formats.read(synthetic).records("train")
    shapes = resized_box_shapes(records, 128, 128)
    auto = auto_anchors(shapes)
    assert auto.sizes[0] < 20 and len(auto.sizes) == 5
    matched_auto = (best_anchor_iou(records, auto) >= 0.5).mean()
    matched_default = (best_anchor_iou(records, default_anchors()) >= 0.5).mean()
    assert matched_auto >= 0.95
    assert matched_default < matched_auto - 0.2


def test_norm_policies_and_freezing():
    body = build_backbone("timm:resnet18")
    frozen = freeze_stages(body, 2)
    assert frozen[-1] == "layer1" and "conv1" in frozen
    assert not any(p.requires_grad for p in body.stages["layer1"].parameters())
    assert all(p.requires_grad for p in body.stages["layer2"].parameters())
    model = build_detector(build_backbone("timm:resnet18"), DetectorConfig("retinanet", 3, norm="frozen_bn"))
    norms = [m for m in model.backbone.body.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    frozen_norms = [m for m in model.backbone.body.modules() if type(m).__name__.startswith("FrozenBatchNorm")]
    assert norms == [] and len(frozen_norms) == 20  # resnet18: stem + 2 per block x 8 blocks + 3 shortcuts
    gn = build_detector(build_backbone("timm:mobilenetv3_small_100"), DetectorConfig("fcos", 3, norm="gn"))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in gn.modules())
    assert any(isinstance(m, torch.nn.GroupNorm) for m in gn.modules())
    sync = build_detector(build_backbone("torchvision:mobilenet_v2"), DetectorConfig("ssd", 3, norm="syncbn"))
    assert any(isinstance(m, torch.nn.SyncBatchNorm) for m in sync.modules())


def test_input_normalisation_follows_the_weights():
    model = build_detector(build_backbone("timm:resnet18"), DetectorConfig("faster_rcnn_fpn", 2))
    assert model.transform.image_mean == [0.485, 0.456, 0.406]
    assert model.transform.image_std == [0.229, 0.224, 0.225]


def test_imagenet_weights_really_load(chess, mobilenet_weights):
    """If the real weights silently did not load, this fails: a linear probe on pooled features of
    chess-piece crops separates the pieces with ImageNet weights and not with a random init."""
    dataset = formats.read(chess)
    crops, labels = [], []
    for record in dataset.records("train")[:30]:
        with Image.open(record.path) as image:
            picture = image.convert("RGB")
            for box, label in zip(record.boxes, record.labels, strict=True):
                crops.append(np.asarray(picture.crop(tuple(int(v) for v in box)).resize((64, 64))))
                labels.append(int(label))
    labels = np.array(labels)
    common = np.isin(labels, [c for c in np.unique(labels) if (labels == c).sum() >= 3])
    x = torch.from_numpy(np.stack(crops)[common]).permute(0, 3, 1, 2).float() / 255
    scores = {}
    for weights in (mobilenet_weights, "random"):
        torch.manual_seed(0)
        body = build_backbone(f"torchvision:mobilenet_v2@{weights}").eval()
        mean, std = torch.tensor(body.mean).view(1, 3, 1, 1), torch.tensor(body.std).view(1, 3, 1, 1)
        with torch.no_grad():
            features = body((x - mean) / std)["c5"].mean(dim=(2, 3)).numpy()
        folds = StratifiedKFold(3, shuffle=True, random_state=0)
        probe = LogisticRegression(max_iter=1000)
        scores[str(weights)] = cross_val_score(probe, features, labels[common], cv=folds, scoring="balanced_accuracy")
    pretrained, random = scores[str(mobilenet_weights)].mean(), scores["random"].mean()
    assert pretrained > 0.6, scores
    assert pretrained > random + 0.3, scores


@pytest.mark.parametrize("name", ["dla34", "tresnet_m"])
def test_timm_feature_indices_that_start_at_one_give_their_strides(name):
    """timm's return_layers hold absolute feature indices; DLA's and TResNet's start at 1, which
    indexed past reduction()'s list (an IndexError before)."""
    backbone = build_backbone(f"timm:{name}@random").eval()
    assert {backbone.strides[n] for n in ("c3", "c4", "c5")} == {8, 16, 32}
    with torch.no_grad():
        maps = backbone(torch.zeros(1, 3, 64, 64))
    assert {name: m.shape[-1] for name, m in maps.items() if name in ("c3", "c4", "c5")} == {"c3": 8, "c4": 4, "c5": 2}
