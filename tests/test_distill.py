"""Distillation terms: zero when the distributions agree, gradients that reach the boxes."""

from __future__ import annotations

import pytest
import torch

from transferdet.distill.losses import (
    crop,
    localization_distillation,
    sigmoid_distillation,
    softmax_distillation,
)


def test_softmax_term_is_zero_when_the_student_matches_the_teacher():
    torch.manual_seed(0)
    teacher = torch.randn(6, 4)
    # the student gives the background (column 0) zero probability and the teacher's odds elsewhere
    student = torch.cat([torch.full((6, 1), -torch.inf), teacher], dim=1)
    assert softmax_distillation(student, teacher, temperature=2.0).item() == pytest.approx(0.0, abs=1e-6)
    other = torch.randn(6, 5)
    assert softmax_distillation(other, teacher).item() > 0.01
    # without a background column: plain T^2 KL, checked against torch's kl_div
    plain = softmax_distillation(other[:, 1:], teacher, temperature=2.0, background_index=None)
    expected = torch.nn.functional.kl_div(
        torch.log_softmax(other[:, 1:] / 2, 1), torch.softmax(teacher / 2, 1), reduction="batchmean"
    )
    assert plain.item() == pytest.approx(4 * expected.item(), rel=1e-5)


def test_sigmoid_term_is_zero_when_each_class_matches():
    torch.manual_seed(1)
    teacher = torch.randn(5, 3)
    q = torch.softmax(teacher / 2.0, dim=1)
    student = 2.0 * torch.logit(q)  # sigmoid(student / T) = q for every class
    assert sigmoid_distillation(student, teacher, temperature=2.0).item() == pytest.approx(0.0, abs=1e-5)
    assert sigmoid_distillation(torch.zeros(5, 3), teacher).item() > 0.01


def test_crop_of_the_whole_image_is_the_image():
    image = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    whole = crop(image, torch.tensor([[0.0, 0.0, 8.0, 8.0]]), torch.tensor([1]), (8, 8), 8)
    torch.testing.assert_close(whole[0], image[1])


def test_localization_term_reaches_the_box_regression():
    torch.manual_seed(2)
    images = torch.rand(2, 3, 32, 32)
    target = torch.tensor([[4.0, 4.0, 20.0, 20.0], [8.0, 2.0, 30.0, 28.0]])
    index = torch.tensor([0, 1])
    # box regression outputs (deltas) decoded into boxes, as a detector head does
    deltas = torch.tensor([[1.5, -1.0, 2.0, 0.5], [0.0, 1.0, -2.0, 1.0]], requires_grad=True)
    stem = torch.nn.Conv2d(3, 4, 3, stride=2, padding=1)
    loss = localization_distillation(images, target + deltas, target, index, teacher_stem=stem)
    loss.backward()
    assert loss.item() > 0 and deltas.grad is not None and deltas.grad.abs().sum() > 0
    assert stem.weight.grad is None  # the teacher is not trained by the student's loss
    same = localization_distillation(images, target.clone().requires_grad_(), target, index, teacher_stem=stem)
    assert same.item() == pytest.approx(0.0, abs=1e-6)


def test_no_positives_give_a_zero_that_still_backpropagates():
    empty = torch.zeros(0, 5, requires_grad=True)
    loss = softmax_distillation(empty, torch.zeros(0, 4)) + sigmoid_distillation(empty[:, 1:], torch.zeros(0, 4))
    loss.backward()
    assert loss.item() == 0.0


def test_teacher_learns_the_box_classes(synthetic, tmp_path, cli):
    import json

    result = cli(
        "distill", "teacher", "--data", synthetic, "--arch", "timm:resnet10t", "--out", tmp_path / "teacher",
        "--crop-size", 32, "--epochs", 10, "--flip", 0, "--device", "cpu",
    )  # fmt: skip
    assert result.code == 0, result.err
    record = json.loads((tmp_path / "teacher" / "teacher.json").read_text())
    assert record["classes"] == [str(d) for d in range(10)] and record["test_split"] == "test"
    assert record["accuracy"] > 0.3  # 10 digits: chance is 0.1
    assert f"crop accuracy {record['accuracy']:.3f}" in result.out
    state = torch.load(tmp_path / "teacher" / "teacher.pt", weights_only=True)
    assert state["state_dict"]["fc.weight"].shape == (10, 512)


def test_box_crop_adds_the_context_margin():
    import numpy as np
    from PIL import Image

    from transferdet.distill.teacher_training import box_crop

    image = Image.fromarray(np.zeros((100, 100, 3), dtype=np.uint8))
    image.paste((255, 255, 255), (40, 40, 60, 60))  # a white 20 x 20 box
    patch = box_crop(image, np.array([40.0, 40.0, 60.0, 60.0]), margin=0.5, size=40)
    assert patch.shape == (3, 40, 40)
    assert patch[:, 20, 20].min() == 255 and patch[:, 2, 2].max() == 0  # box in the middle, context around it


def test_crops_of_many_boxes_in_any_image_order_equal_one_crop_at_a_time():
    torch.manual_seed(3)
    maps = torch.rand(3, 2, 16, 16)
    boxes = torch.tensor([[0.0, 0.0, 8.0, 8.0], [2.0, 3.0, 15.0, 9.0], [4.0, 4.0, 12.0, 16.0], [1.0, 5.0, 6.0, 7.0]])
    index = torch.tensor([2, 0, 2, 1])
    together = crop(maps, boxes, index, (16, 16), 5)
    for row in range(len(boxes)):
        alone = crop(maps, boxes[row : row + 1], index[row : row + 1], (16, 16), 5)
        torch.testing.assert_close(together[row], alone[0])


class EchoTeacher:
    """A stand-in teacher whose logits spell out the box and its image: row = (x1, y1, x2, y2,
    sum of the image's pixels, 0, ...), so a test can see which box each positive was matched to."""

    def __init__(self, classes):
        self.classes = classes

    def crop_logits(self, image, boxes):
        pad = torch.zeros(len(boxes), len(self.classes) - 5)
        return torch.cat([boxes, image.sum().expand(len(boxes), 1), pad], dim=1)

    def stem_features(self, images):
        return images


REGRESSION_OUTPUT = {
    "fcos": lambda m: m.head.regression_head.bbox_reg,
    "retinanet": lambda m: m.head.regression_head.bbox_reg,
    "ssd": lambda m: m.head.regression_head.module_list,
    "faster_rcnn_fpn": lambda m: m.roi_heads.box_predictor.bbox_pred,
    "mask_rcnn_fpn": lambda m: m.roi_heads.box_predictor.bbox_pred,
}
CLASS_OUTPUT = {
    "fcos": lambda m: m.head.classification_head.cls_logits,
    "retinanet": lambda m: m.head.classification_head.cls_logits,
    "ssd": lambda m: m.head.classification_head.module_list,
    "faster_rcnn_fpn": lambda m: m.roi_heads.box_predictor.cls_score,
    "mask_rcnn_fpn": lambda m: m.roi_heads.box_predictor.cls_score,
}


@pytest.mark.parametrize("kind", sorted(REGRESSION_OUTPUT))
def test_each_detector_family_distils_on_its_own_positives(kind, synthetic):
    """The terms are added to the detector's losses; each positive is compared with the teacher's
    logits of the very box (and image) it is matched to; the localization term's gradient reaches
    the box regression outputs and not the classifier, the classification term's the classifier."""
    from pathlib import Path

    from transferdet.data import formats
    from transferdet.data.transforms import TorchDetectionDataset, collate_detection, detection_transforms
    from transferdet.distill.distiller import Distiller, DistillSettings
    from transferdet.models.backbones import build_backbone
    from transferdet.models.detectors import SOFTMAX_DETECTORS, DetectorConfig, build_detector

    dataset = formats.read(synthetic)
    torch.manual_seed(0)
    config = DetectorConfig(kind, len(dataset.classes), min_size=128, max_size=128, fpn_channels=32)
    model = build_detector(build_backbone("timm:resnet10t"), config).train()
    data = TorchDetectionDataset(
        dataset.records("train")[:2],
        detection_transforms(train=False),
        with_masks=kind == "mask_rcnn_fpn",
        label_offset=model.label_offset,
    )
    images, targets = collate_detection([data[0], data[1]])  # 128 px: the detector does not resize
    distiller = Distiller(model, EchoTeacher(dataset.classes), DistillSettings(Path("unused")), dataset.classes)
    seen = {}
    plain_terms = distiller.terms

    def terms(student_logits, teacher_logits, predicted_boxes, target_boxes, image_index, softmax):
        seen.update(
            student=student_logits, teacher=teacher_logits, target=target_boxes, index=image_index, softmax=softmax
        )
        return plain_terms(student_logits, teacher_logits, predicted_boxes, target_boxes, image_index, softmax)

    distiller.terms = terms
    distiller.install()
    distiller.annotate(images, targets)
    losses = model(images, targets)
    assert {"distill_cls", "distill_loc"} <= set(losses)
    assert all(torch.isfinite(losses[k]) and losses[k] > 0 for k in ("distill_cls", "distill_loc"))
    rows = len(seen["teacher"])
    assert rows > 0 and seen["softmax"] == (kind in SOFTMAX_DETECTORS)
    assert seen["student"].shape == (rows, len(dataset.classes) + model.label_offset)
    torch.testing.assert_close(seen["teacher"][:, :4], seen["target"])
    image_sums = torch.stack([image.sum() for image in images])
    torch.testing.assert_close(seen["teacher"][:, 4], image_sums[seen["index"]])
    for row, image in zip(seen["target"], seen["index"], strict=True):
        assert (targets[image]["boxes"] == row).all(dim=1).any()  # one of that image's boxes

    def grad_norm(loss, module):
        grads = torch.autograd.grad(loss, list(module.parameters()), retain_graph=True, allow_unused=True)
        return sum(float(g.abs().sum()) for g in grads if g is not None)

    regression, classifier = REGRESSION_OUTPUT[kind](model), CLASS_OUTPUT[kind](model)
    assert grad_norm(losses["distill_loc"], regression) > 0
    assert grad_norm(losses["distill_loc"], classifier) == 0
    assert grad_norm(losses["distill_cls"], classifier) > 0
    distiller.remove()
    assert set(model(images, targets)) == set(losses) - {"distill_cls", "distill_loc"}


@pytest.fixture(scope="module")
def tiny_teacher(synthetic, tmp_path_factory):
    """A ResNet-10-T crop teacher of the synthetic digits, one epoch at 32 px."""
    from transferdet.distill.teacher_training import TeacherConfig, train_teacher

    folder = tmp_path_factory.mktemp("teacher")
    train_teacher(synthetic, TeacherConfig("timm:resnet10t", crop_size=32, epochs=1, flip=0.0), folder)
    return folder


def test_train_distill_from_a_teacher_folder(synthetic, tiny_teacher, tmp_path, cli):
    import json
    import shutil

    shutil.copytree(tiny_teacher, tmp_path / "teacher")
    common = ("--data", synthetic, "--backbone", "timm:resnet10t", "--detector", "fcos", "--device", "cpu")
    run = tmp_path / "run"
    result = cli(
        "train", *common, "--out", run, "--set", "iterations=2", "--set", "eval_every=0",
        "--distill-from", tmp_path / "teacher", "--distill-cls-weight", 0.5, "--distill-temperature", 3,
    )  # fmt: skip
    assert result.code == 0, result.err
    lines = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert all(line["distill_cls"] > 0 and line["distill_loc"] > 0 for line in lines)
    recorded = json.loads((run / "recipe.json").read_text())["job"]["distill"]
    assert recorded == {"teacher": str(tmp_path / "teacher"), "cls_weight": 0.5, "loc_weight": 0.15, "temperature": 3.0}

    other = tmp_path / "other-teacher"
    shutil.copytree(tmp_path / "teacher", other)
    record = json.loads((other / "teacher.json").read_text())
    (other / "teacher.json").write_text(json.dumps({**record, "classes": list("abcdefghij")}))
    result = cli("train", *common, "--out", tmp_path / "bad", "--distill-from", other)
    assert result.code == 2 and "the teacher's classes ['a', 'b', 'c'," in result.err and "differ from" in result.err
    (other / "teacher.json").write_text(json.dumps({**record, "classes": ["a", "b"]}))
    result = cli("train", *common, "--out", tmp_path / "bad", "--distill-from", other)
    assert (
        result.code == 2
        and "teacher.pt: does not fit" in result.err
        and "(timm:resnet10t with 2 classes)" in result.err
    )
    result = cli("train", *common, "--out", tmp_path / "bad", "--distill-from", tmp_path / "nowhere")
    assert result.code == 2 and "nowhere/teacher.pt: missing" in result.err
    result = cli("train", *common, "--out", tmp_path / "bad", "--distill-from", tmp_path / "teacher",
                 "--distill-temperature", 0)  # fmt: skip
    assert result.code == 2 and "--distill-temperature must be > 0" in result.err
    assert not (tmp_path / "bad").exists()  # nothing written for a bad teacher


def test_teacher_logits_are_remembered_per_image_and_box_positions():
    from pathlib import Path

    from transferdet.distill.distiller import TEACHER_LOGITS, Distiller, DistillSettings

    calls = []

    class CountingTeacher(EchoTeacher):
        def crop_logits(self, image, boxes):
            calls.append(len(boxes))
            return super().crop_logits(image, boxes)

    classes = [str(c) for c in range(6)]
    distiller = Distiller(torch.nn.Identity(), CountingTeacher(classes), DistillSettings(Path("unused")), classes)
    image = torch.rand(3, 16, 16)
    boxes = torch.tensor([[1.0, 2.0, 8.0, 9.0]])
    mirrored = torch.tensor([[8.0, 2.0, 15.0, 9.0]])
    for _ in range(3):  # three epochs: one teacher pass per distinct (image, boxes)
        targets = [{"boxes": boxes, "image_id": 0}, {"boxes": boxes, "image_id": 1}, {"boxes": mirrored, "image_id": 0}]
        distiller.annotate([image, image.flip(-1), image.flip(-1)], targets)
    assert calls == [1, 1, 1]
    torch.testing.assert_close(targets[2][TEACHER_LOGITS][:, :4], mirrored)
    torch.testing.assert_close(targets[1][TEACHER_LOGITS][:, 4], image.sum().view(1))


def test_distilled_run_resumed_after_a_stop_equals_an_uninterrupted_one(synthetic, tiny_teacher, tmp_path):
    """The resumed run starts with no remembered teacher logits and must still reach the same weights."""
    from transferdet.distill.distiller import DistillSettings
    from transferdet.errors import TransferdetError
    from transferdet.train.engine import train
    from transferdet.train.job import TrainJob
    from transferdet.train.recipes import load_recipe

    recipe = load_recipe("quick", ["iterations=6", "batch_size=2", "checkpoint_every=3", "num_workers=0", "flip=0.5"])

    def job(out):
        return TrainJob(
            synthetic, "timm:resnet10t", "fcos", recipe, out, device="cpu", distill=DistillSettings(tiny_teacher)
        )

    train(job(tmp_path / "whole"))

    class Stop(Exception):
        pass

    def stop_after_four(iteration, total, scalars):
        if iteration == 4:
            raise Stop

    with pytest.raises(Stop):
        train(job(tmp_path / "stopped"), on_iteration=stop_after_four)
    plain = TrainJob(synthetic, "timm:resnet10t", "fcos", recipe, tmp_path / "stopped", device="cpu")
    with pytest.raises(TransferdetError, match="resume it with the same --distill-\\* options"):
        train(plain, resume=True)  # forgetting --distill-from on resume is an error, not a silent change
    train(job(tmp_path / "stopped"), resume=True)
    a = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "stopped" / "checkpoint.pt", weights_only=False)["model"]
    assert all(torch.equal(a[key], b[key]) for key in a)
