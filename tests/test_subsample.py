"""Bootstrapped sub-datasets by class co-occurrence (the TMOD paper's "Real 2")."""

from __future__ import annotations

import json

import numpy as np
import pytest

from transferdet.data import formats
from transferdet.data.subsample import (
    SubsampleConfig,
    bootstrap_subsets,
    draw_class_set,
    presence_matrix,
)
from transferdet.errors import TransferdetError


def test_subsets_follow_the_recipe(chess):
    dataset = formats.read(chess)
    config = SubsampleConfig(datasets=4, classes=3, train=40, test=20, min_images=30, seed=1)
    subsets = bootstrap_subsets(dataset, config)
    assert len(subsets) == 4
    presence = presence_matrix(dataset.records(), len(dataset.classes))
    frequent = {dataset.classes[c] for c in np.flatnonzero(presence.sum(axis=0) > 30)}
    for subset in subsets:
        assert len(subset.classes) == 3 and set(subset.classes) <= frequent
        train, test = subset.splits["train"], subset.splits["test"]
        assert (len(train), len(test)) == (40, 20)
        assert not {r.file_name for r in train} & {r.file_name for r in test}
        for record in train + test:
            assert record.num_boxes > 0 and set(record.labels.tolist()) <= {0, 1, 2}
    again = bootstrap_subsets(dataset, config)
    assert [s.classes for s in again] == [s.classes for s in subsets]


def test_other_classes_follow_cooccurrence():
    """A class never seen with the seed class is never drawn with it."""
    presence = np.zeros((40, 4), dtype=bool)
    presence[:20, [0, 1]] = True  # 0 and 1 together
    presence[20:, [2, 3]] = True  # 2 and 3 together
    rng = np.random.default_rng(0)
    config = SubsampleConfig(classes=2, min_images=5)
    for _ in range(50):
        assert draw_class_set(presence, config, rng) in ([0, 1], [2, 3])


def test_cli_writes_subsets_and_summary(cli, synthetic, tmp_path):
    result = cli(
        "data",
        "subsample",
        synthetic,
        tmp_path / "subs",
        "--datasets",
        2,
        "--classes",
        2,
        "--train",
        8,
        "--test",
        4,
        "--min-images",
        3,
        "--image-mode",
        "symlink",
    )
    assert result.code == 0, result.err
    summary = json.loads((tmp_path / "subs" / "subsets.json").read_text())
    assert [s["name"] for s in summary["subsets"]] == ["subset-00", "subset-01"]
    first = formats.read(tmp_path / "subs" / "subset-00")
    assert first.classes == summary["subsets"][0]["classes"]
    assert {k: len(v) for k, v in first.splits.items()} == {"train": 8, "test": 4}


def test_impossible_request_is_a_clear_error(synthetic):
    with pytest.raises(TransferdetError, match="drew only 0 of 1 sub-datasets"):
        bootstrap_subsets(formats.read(synthetic), SubsampleConfig(datasets=1, classes=11, max_attempts=20))
