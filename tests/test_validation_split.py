"""Evaluation during training (what a plateau schedule steers on) uses a validation split, never
the split that is finally reported: the dataset's own, or a seeded tenth of the training images."""

from __future__ import annotations

from collections import Counter

from transferdet.data.dataset import DetectionDataset
from transferdet.data.loader import load_dataset
from transferdet.data.split import CARVED_VALIDATION, validation_split
from transferdet.train import loop
from transferdet.train.engine import train
from transferdet.train.job import TrainJob
from transferdet.train.recipes import load_recipe


def test_a_dataset_without_validation_split_gets_one_carved_from_train(synthetic):
    dataset = load_dataset(synthetic)
    assert "val" not in dataset.splits and "test" in dataset.splits
    carved, train_split, val_split = validation_split(dataset, "train", "test", seed=3)
    before = [r.file_name for r in dataset.records("train")]
    kept = [r.file_name for r in carved.records(train_split)]
    held = [r.file_name for r in carved.records(val_split)]
    assert val_split == CARVED_VALIDATION and train_split == "train"
    assert len(held) == round(0.1 * len(before)) and sorted(kept + held) == sorted(before) and not set(kept) & set(held)
    assert carved.records("test") == dataset.records("test")  # the reported split is untouched
    again = validation_split(dataset, "train", "test", seed=3)[0]
    assert [r.file_name for r in again.records(val_split)] == held  # seeded
    other = validation_split(dataset, "train", "test", seed=4)[0]
    assert [r.file_name for r in other.records(val_split)] != held


def test_a_dataset_with_its_own_validation_split_keeps_it():
    # the splits' records are not looked at
    dataset = DetectionDataset(["a"], {"train": [None] * 5, "valid": [None] * 2, "test": [None] * 2}, "coco")
    assert validation_split(dataset, "train", "test", seed=0) == (dataset, "train", "valid")
    # reported on "valid" (no test split): then "valid" is not a validation split, and one is carved
    both = DetectionDataset(["a"], {"train": [None] * 5, "valid": [None] * 2}, "coco")
    carved, _, val_split = validation_split(both, "train", "valid", seed=0)
    assert val_split == CARVED_VALIDATION and Counter(map(len, carved.splits.values())) == Counter([4, 2, 1])


def test_a_plateau_schedule_never_sees_the_reported_split(synthetic, tmp_path, monkeypatch):
    seen = []
    real = loop.evaluate

    def spy(model, dataset, split, device, group=None):  # noqa: ANN001, ANN202
        seen.append(split)
        return real(model, dataset, split, device, group)

    monkeypatch.setattr(loop, "evaluate", spy)
    small = ["iterations=4", "batch_size=2", "num_workers=0", "min_size=[64]", "max_size=64", "eval_every=2"]
    metrics = train(
        TrainJob(synthetic, "timm:resnet10t", "fcos", load_recipe("tmod_frozen", small), tmp_path, device="cpu")
    )
    assert seen == [CARVED_VALIDATION] and metrics["split"] == "test"
    log = (tmp_path / "log.jsonl").read_text()
    assert f'"split": "{CARVED_VALIDATION}"' in log


def test_a_single_training_image_is_not_cut_in_two():
    dataset = DetectionDataset(["a"], {"train": [None], "test": [None]}, "coco")
    assert validation_split(dataset, "train", "test", seed=0) == (dataset, "train", None)
