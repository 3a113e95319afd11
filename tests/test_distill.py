"""Distillation terms: zero when the distributions agree, gradients that reach the boxes."""

from __future__ import annotations

import pytest
import torch

from transferdet.train.distill import (
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

    from transferdet.train.teacher import box_crop

    image = Image.fromarray(np.zeros((100, 100, 3), dtype=np.uint8))
    image.paste((255, 255, 255), (40, 40, 60, 60))  # a white 20 x 20 box
    patch = box_crop(image, np.array([40.0, 40.0, 60.0, 60.0]), margin=0.5, size=40)
    assert patch.shape == (3, 40, 40)
    assert patch[:, 20, 20].min() == 255 and patch[:, 2, 2].max() == 0  # box in the middle, context around it
