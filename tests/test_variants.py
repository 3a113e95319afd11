"""Feature variants: width-matched features (one dimension for every candidate, whatever the others)
and pyramid-level box features (each box from the level FPN's rule gives it)."""

from __future__ import annotations

import numpy as np
import pytest

from transferdet.errors import TransferdetError
from transferdet.metrics import h_score, logme, transrate
from transferdet.transfer.rank import RankSettings, rank
from transferdet.transfer.variants import (
    base_layers,
    box_sides,
    parse_layer,
    pyramid_levels,
    pyramid_only,
    weighted_level_score,
    width_matched,
)


def _features(seed: int = 0, n: int = 120, d: int = 96) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(3), n // 3)
    features = rng.normal(size=(n, d)) + labels[:, None] * rng.normal(size=d) * 0.5
    return features, labels


def test_duplicating_a_candidates_channels_changes_no_width_matched_score() -> None:
    features, labels = _features()
    once, kept = width_matched(features, 16)
    twice, _ = width_matched(np.hstack([features, features]), 16)
    assert kept == 16 and once.shape == (120, 16)
    np.testing.assert_allclose(twice, once, rtol=1e-9, atol=1e-9)
    for metric in (logme, h_score, transrate):
        assert metric(twice, labels) == pytest.approx(metric(once, labels), rel=1e-8)


def test_width_matching_lifts_the_n_below_d_ceiling() -> None:
    features, labels = _features(n=60, d=200)
    assert h_score(features, labels) == pytest.approx(2.0, abs=1e-6)  # N < D: at C - 1
    assert h_score(width_matched(features, 16)[0], labels) < 1.9


def test_fewer_dimensions_than_asked_keeps_what_there_is() -> None:
    features, _ = _features(d=8)
    projected, kept = width_matched(features, 64)
    assert kept == 8 and projected.shape == (120, 8)
    assert np.mean(projected**2) == pytest.approx(1.0)  # unit mean variance per dimension


def test_fpn_level_rule_and_box_sides_in_input_pixels() -> None:
    assert pyramid_levels(np.array([50.0, 112.0, 223.0, 224.0, 447.0, 448.0, 2000.0])).tolist() == [3, 3, 3, 4, 4, 5, 5]
    boxes = np.array([[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 1.0, 0.25]])
    sizes = np.array([[800.0, 400.0], [400.0, 800.0]])  # resized to a longer side of 256
    np.testing.assert_allclose(box_sides(boxes, sizes, 256), [np.sqrt(128 * 64), np.sqrt(128 * 64)])


def test_a_level_the_backbone_lacks_gives_its_boxes_to_the_nearest_it_has() -> None:
    sides = np.array([50.0, 300.0, 2000.0])  # levels 3, 4, 5
    assert pyramid_levels(sides, (4,)).tolist() == [4, 4, 4]  # a plain ViT: c4 alone
    assert pyramid_levels(sides, (3, 4)).tolist() == [3, 4, 4]  # SqueezeNet: no stride-32 map
    assert pyramid_levels(sides, (3, 5)).tolist() == [3, 3, 5]  # equally near: the finer
    assert pyramid_only(("c4", "pyramid/wm32")) == {"c3", "c5"}  # c4 asked for outright must exist


def test_levels_are_combined_by_box_count_over_the_levels_that_scored() -> None:
    assert weighted_level_score([1.0, 4.0, None], [30, 10, 5]) == pytest.approx((30 + 40) / 40)
    assert weighted_level_score([None, float("nan")], [3, 4]) is None


def test_layer_names() -> None:
    assert parse_layer("c5/wm64").width == 64 and parse_layer("c5/wm64").base == ("c5",)
    assert parse_layer("pyramid/wm32").base == ("c3", "c4", "c5")
    assert base_layers(("c4", "c5/wm64", "pyramid/wm32")) == ("c4", "c5", "c3")
    with pytest.raises(TransferdetError, match="pyramid levels differ in width"):
        parse_layer("pyramid")
    with pytest.raises(TransferdetError, match="expected a layer"):
        RankSettings(layers="c5/wm")


def test_a_candidates_width_matched_score_does_not_depend_on_the_others(synthetic) -> None:
    settings = RankSettings(layers="c5/wm16,pyramid/wm8", image_size=96, max_images=12, device="cpu")
    alone = rank(synthetic, ["timm:resnet10t@random"], ["logme", "gbc"], settings=settings)
    beside = rank(synthetic, ["timm:resnet10t@random", "timm:mobilenetv3_small_050@random"], ["logme", "gbc"],
                  settings=settings)  # fmt: skip
    first = {(r["layer"], r["metric"]): r["score"] for r in beside if r["model"] == "timm:resnet10t@random"}
    assert {(r["layer"], r["metric"]): r["score"] for r in alone} == first
    assert all(r["score"] is not None for r in alone)


def test_a_plain_vits_pyramid_reads_every_box_from_its_one_map(synthetic, tmp_path) -> None:
    """A plain ViT has c4 alone: pyramid/wm8 reads every box there and scores as c4/wm8 does (before,
    it failed on c3), from the cache too. Asked for outright, c3 is still an error naming the layers
    the model has."""
    vit = "timm:vit_tiny_patch16_224@random"
    settings = RankSettings(layers="pyramid/wm8,c4/wm8", image_size=96, max_images=12, device="cpu")
    rows = rank(synthetic, [vit], ["logme", "gbc"], settings=settings, cache_dir=tmp_path)
    assert rank(synthetic, [vit], ["logme", "gbc"], settings=settings, cache_dir=tmp_path) == rows  # c4 cached
    found = {(r["layer"], r["metric"]): r for r in rows}
    for metric in ("logme", "gbc"):
        assert found["pyramid/wm8", metric]["score"] == pytest.approx(found["c4/wm8", metric]["score"], rel=1e-12)
    assert found["pyramid/wm8", "logme"]["note"].startswith("boxes per level {'c4': ")
    with pytest.raises(TransferdetError, match="layer 'c3': this model has c4"):
        rank(synthetic, [vit], ["logme"], settings=RankSettings(layers="c3,pyramid/wm8", image_size=96, device="cpu"))


def test_variants_are_scored_from_the_plain_layers_cache_entries(synthetic, tmp_path) -> None:
    """The variants add nothing to the feature cache's key: a cache written by a ranking of c3, c4 and
    c5 (before the variants existed, too) serves them, and serves what a cold ranking computes."""
    model, metrics = ["timm:resnet10t@random"], ["logme", "gbc"]
    plain = RankSettings(layers="c3,c4,c5", image_size=96, max_images=12, device="cpu")
    rank(synthetic, model, metrics, settings=plain, cache_dir=tmp_path)
    entries = sorted(tmp_path.rglob("*.npz"))
    variants = RankSettings(layers="c5/wm16,pyramid/wm8", image_size=96, max_images=12, device="cpu")
    cached = rank(synthetic, model, metrics, settings=variants, cache_dir=tmp_path)
    assert sorted(tmp_path.rglob("*.npz")) == entries and len(entries) == 3  # one per layer, none added
    assert cached == rank(synthetic, model, metrics, settings=variants)
