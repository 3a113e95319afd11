"""What a race's noise is made of: the per-image predictions a rung keeps (a round trip), the image
noise read from them (the paired bootstrap's standard error, 0 where a run kept none), and a
replicate's runs, which keep the race's validation images while their seed changes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from transferdet.evaluate.coco_metrics import Prediction
from transferdet.runs import RunDir


def _predictions(seed: int, images: int) -> list[Prediction]:
    rng = np.random.default_rng(seed)
    found = []
    for i in range(images):
        count = 0 if i == 1 else 5  # one image without detections
        xy = rng.uniform(0, 40, (count, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(5, 20, (count, 2))], axis=1)
        found.append(Prediction(boxes, rng.uniform(0, 1, count), rng.integers(0, 2, count)))
    return found


def test_a_rungs_predictions_round_trip(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    kept = _predictions(0, 4)
    run.write_rung_predictions(7, kept)
    back = run.rung_predictions(7)
    assert len(back) == 4 and len(back[1].scores) == 0
    for a, b in zip(kept, back, strict=True):
        np.testing.assert_array_equal(a.boxes, b.boxes)
        np.testing.assert_array_equal(a.scores, b.scores)
        np.testing.assert_array_equal(a.labels, b.labels)
    assert run.rung_predictions(8) is None  # a rung it did not keep


def test_the_image_noise_is_the_paired_bootstraps_standard_error(tmp_path: Path) -> None:
    from transferdet.data.dataset import ImageRecord
    from transferdet.evaluate.image_records import match_records, paired_difference
    from transferdet.select.image_noise import ImageNoise

    rng = np.random.default_rng(3)
    records = []
    for i in range(6):
        xy = rng.uniform(0, 40, (3, 2))
        boxes = np.concatenate([xy, xy + 12], axis=1)
        records.append(ImageRecord(i, f"img{i}.jpg", Path(f"img{i}.jpg"), 64, 64, boxes, rng.integers(0, 2, 3)))
    folders = {}
    for name, seed in (("a", 1), ("b", 2), ("old", 3)):
        folders[name] = tmp_path / name
        folders[name].mkdir()
        if name != "old":
            RunDir(folders[name]).write_rung_predictions(5, _predictions(seed, 6))
    noise = ImageNoise(folders, records, ["x", "y"], seed=0)
    a, b = (match_records(records, ["x", "y"], _predictions(s, 6)) for s in (1, 2))
    expected = paired_difference(a, b, 1000, 0)[1]
    assert expected > 0 and noise("a", "b", 5) == pytest.approx(expected)
    assert noise("a", "old", 5) == 0.0  # a run from before rungs kept their predictions


def test_a_replicate_keeps_the_races_validation_images(synthetic: Path, tmp_path: Path) -> None:
    from dataclasses import replace

    from transferdet.train.engine import job_data
    from transferdet.train.job import TrainJob
    from transferdet.train.recipes import load_recipe

    race = TrainJob(synthetic, "unused", "fcos", load_recipe("quick"), tmp_path, seed=0, carve_validation=True)
    names = lambda job: [r.path.name for r in job_data(job)[0].records(job_data(job)[3])]  # noqa: E731
    assert names(replace(race, seed=1, split_seed=0)) == names(race)  # the replicate: same images
    assert names(replace(race, seed=1)) != names(race)  # another race's seed: another carve
