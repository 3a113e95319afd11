"""Per-box features, the feature cache, and ranking backbones (API and CLI)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torchvision.ops import roi_align

from transferdet.data import formats
from transferdet.data.validation import DataWarning
from transferdet.models.backbones import build_backbone
from transferdet.transfer.features import extract_box_features, sample_records
from transferdet.transfer.rank import DEFAULT_METRICS, RankSettings, rank
from transferdet.transfer.recommended import LAYER as RECOMMENDED_LAYER


def test_local_and_global_features(synthetic):
    records = formats.read(synthetic).records("train")[:3]
    torch.manual_seed(0)
    backbone = build_backbone("timm:resnet18").eval()
    local = extract_box_features(backbone, records, "c4", "local", image_size=128)
    assert local.features.shape == (sum(r.num_boxes for r in records), backbone.channels["c4"])
    assert local.features.dtype == np.float64
    np.testing.assert_array_equal(local.labels, np.concatenate([r.labels for r in records]))
    np.testing.assert_allclose(local.boxes, np.concatenate([r.boxes for r in records]) / 128)
    # the first box by hand: RoI-Align 7x7 (sampling 2, aligned) on the stride-16 map, averaged
    mean, std = torch.tensor(backbone.mean).view(1, 3, 1, 1), torch.tensor(backbone.std).view(1, 3, 1, 1)
    from PIL import Image
    from torchvision.transforms.v2 import functional as F

    with Image.open(records[0].path) as image:
        pixels = F.pil_to_tensor(image.convert("RGB")).float()[None] / 255
    with torch.no_grad():
        fmap = backbone((pixels - mean) / std)["c4"]
    box = torch.tensor(records[0].boxes[:1], dtype=torch.float32)
    expected = roi_align(fmap, [box], 7, 1 / 16, 2, aligned=True).mean(dim=(2, 3))[0].double().numpy()
    np.testing.assert_allclose(local.features[0], expected, rtol=1e-5, atol=1e-6)
    whole = extract_box_features(backbone, records, "c4", "global", image_size=128)
    first = records[0].num_boxes
    assert np.allclose(whole.features[:first], whole.features[0])  # one vector repeated per box
    np.testing.assert_allclose(whole.features[0], fmap[0].mean(dim=(1, 2)).double().numpy(), rtol=1e-5, atol=1e-6)


def test_sampling_is_seeded(synthetic):
    records = formats.read(synthetic).records()
    a = sample_records(records, 10, 3, seed=4)
    b = sample_records(records, 10, 3, seed=4)
    assert [r.file_name for r in a] == [r.file_name for r in b]
    labels = np.concatenate([r.labels for r in a])
    assert np.bincount(labels).max() <= 3
    assert [r.file_name for r in sample_records(records, 10, None, seed=5)] != [r.file_name for r in a]


def test_imagenet_weights_outrank_random_on_bccd(bccd, mobilenet_weights, tmp_path):
    pretrained = f"torchvision:mobilenet_v2@{mobilenet_weights}"
    with pytest.warns(DataWarning, match="dropped 2 zero area"):  # bccd's two zero-size boxes
        rows = rank(
            bccd,
            [pretrained, "torchvision:mobilenet_v2@random"],
            metrics=["logme", "tlogme"],
            settings=RankSettings(layers="c5", max_images=100, image_size=384, device="cpu"),
            cache_dir=tmp_path,
        )
    score = {(r["model"], r["metric"]): r["score"] for r in rows}
    for metric in ("logme", "tlogme"):
        assert score[(pretrained, metric)] > score[("torchvision:mobilenet_v2@random", metric)], metric


def test_rank_cli_json_files_and_cache(cli, synthetic, tmp_path, monkeypatch):
    args = [
        "rank",
        "--data",
        synthetic,
        "--models",
        "timm:resnet18@random,torchvision:mobilenet_v2@random",
        "--metrics",
        "logme,h_score,leep",
        "--layer",
        "c4",
        "--image-size",
        "128",
        "--max-images",
        "12",
        "--cache-dir",
        tmp_path / "cache",
        "--out",
        tmp_path / "out",
        "--device",
        "cpu",
    ]
    first = cli(*args, "--json")
    assert first.code == 0, first.err
    rows = first.json()
    assert {r["model"] for r in rows} == {"timm:resnet18@random", "torchvision:mobilenet_v2@random"}
    assert {r["metric"] for r in rows} == {"logme", "h_score"}  # no classifier: leep unavailable
    assert all(r["layer"] == "c4" and r["features"] == "local" for r in rows)
    assert json.loads((tmp_path / "out" / "scores.json").read_text()) == rows
    assert (tmp_path / "out" / "scores.csv").read_text().startswith("model,layer,features,metric,score")
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2

    def no_forward(*_args, **_kwargs):
        raise AssertionError("features should come from the cache")

    monkeypatch.setattr("transferdet.transfer.rank.extract_layers", no_forward)
    again = cli(*args, "--json")
    assert again.code == 0, again.err
    assert again.json() == rows
    table = cli(*args)
    assert table.code == 0 and "logme" in table.out and "(1)" in table.out


def test_rank_errors(cli, synthetic):
    bad = cli("rank", "--data", synthetic, "--models", "timm:resnet18", "--layer", "p3", "--no-cache")
    assert bad.code == 2 and "layer 'p3'" in bad.err
    none = cli("rank", "--data", synthetic)
    assert none.code == 2 and "no models" in none.err
    unknown = cli("rank", "--data", synthetic, "--models", "timm:resnet18", "--metrics", "accuracy")
    assert unknown.code == 2 and "unknown metric" in unknown.err
    with pytest.raises(Exception, match="expected timm:NAME"):
        rank(synthetic, ["resnet18"])


def test_several_layers_come_from_one_forward_pass_and_equal_one_layer_at_a_time(synthetic, forward_passes):
    from transferdet.transfer.features import extract_layers

    records = formats.read(synthetic).records("train")[:5]
    torch.manual_seed(0)
    backbone = build_backbone("timm:resnet18").eval()
    forward_passes[0] = 0  # building probes the stage list once at another size; count the extraction's passes
    together = extract_layers(backbone, records, ["c3", "c4", "c5", "c2"], image_size=96, batch_size=2)
    assert forward_passes[0] == 3  # 5 images in batches of 2: one pass per batch for all four layers
    assert list(together) == ["c3", "c4", "c5", "c2"]
    for layer, features in together.items():
        alone = extract_box_features(backbone, records, layer, image_size=96, batch_size=2)
        np.testing.assert_array_equal(features.features, alone.features)
        np.testing.assert_array_equal(features.labels, alone.labels)
        assert features.features.shape[1] == backbone.channels[layer]


def test_batches_group_images_of_one_shape_and_keep_the_boxes_in_record_order(synthetic):
    from dataclasses import replace

    from transferdet.transfer.features import _batches, extract_layers

    records = formats.read(synthetic).records("train")[:6]
    # two shapes, interleaved: batches of 2 hold one shape each
    mixed = [replace(r, width=r.width // 2) if i % 2 else r for i, r in enumerate(records)]
    assert _batches(mixed, 2) == [[0, 2], [4, 1], [3, 5]]
    torch.manual_seed(0)
    features = extract_layers(build_backbone("timm:resnet10t"), records, ["c4"], image_size=64, batch_size=4)["c4"]
    np.testing.assert_array_equal(features.image_index, np.repeat(np.arange(6), [r.num_boxes for r in records]))
    np.testing.assert_array_equal(features.labels, np.concatenate([r.labels for r in records]))


def test_rank_on_several_layers_caches_each_and_extracts_only_what_is_missing(synthetic, tmp_path, monkeypatch):
    from transferdet.transfer import rank as rank_module

    settings = RankSettings(layers="c4", image_size=64, max_images=6, device="cpu")
    rank(synthetic, ["timm:resnet10t@random"], ["logme"], settings=settings, cache_dir=tmp_path)
    asked = []
    real = rank_module.extract_layers

    def spy(backbone, records, layers, *args, **kwargs):
        asked.append(list(layers))
        return real(backbone, records, layers, *args, **kwargs)

    monkeypatch.setattr(rank_module, "extract_layers", spy)
    both = RankSettings(layers=["c4", "c5,c3"], image_size=64, max_images=6, device="cpu")
    assert both.layers == ("c4", "c5", "c3")
    rows = rank(synthetic, ["timm:resnet10t@random"], ["logme"], settings=both, cache_dir=tmp_path)
    assert asked == [["c5", "c3"]]  # c4 came from the cache
    assert [r["layer"] for r in rows] == ["c4", "c5", "c3"]
    alone = rank(synthetic, ["timm:resnet10t@random"], ["logme"], settings=replace_layers(both, "c5"))
    assert rows[1]["score"] == alone[0]["score"]
    with pytest.raises(Exception, match="no layer given"):
        RankSettings(layers=" , ")


def replace_layers(settings: RankSettings, layers: str) -> RankSettings:
    from dataclasses import replace

    return replace(settings, layers=layers)


def test_rank_prints_the_baselines_beside_the_metrics_and_a_recommendation(cli, synthetic, tmp_path):
    from transferdet.cli.score_table import model_labels
    from transferdet.models.backbones import build_backbone

    args = ["rank", "--data", synthetic, "--models", "timm:resnet18@random,torchvision:mobilenet_v2@random",
            "--image-size", 96, "--max-images", 12, "--device", "cpu", "--no-cache", "--out", tmp_path]  # fmt: skip
    result = cli(*args)
    assert result.code == 0, result.err
    rows = json.loads((tmp_path / "scores.json").read_text())
    assert [r["metric"] for r in rows[-3:]] == ["knn", "model_size", "imagenet_top1"]  # random inits: chance
    size = {r["model"]: r["score"] for r in rows if r["metric"] == "model_size"}
    for spec in size:  # counted on the meta device; the real backbone has as many parameters
        assert size[spec] == sum(p.numel() for p in build_backbone(spec).parameters())
    assert all(0.0 <= r["score"] <= 1.0 for r in rows if r["metric"] == "knn")
    lead = DEFAULT_METRICS[0]  # the metric the real benchmark validates best (docs/results.md)
    scores = {r["model"]: r["score"] for r in rows if r["metric"] == lead}
    best = max(scores, key=scores.get)
    larger = max(size, key=size.get)
    labels, _ = model_labels(list(size))  # MobileNetV2's spec is long: the table calls the models m1, m2
    line = next(line for line in result.out.splitlines() if line.startswith("recommended:"))
    assert line.startswith(f"recommended: {labels[best]} = {best} (first by {lead} on {RECOMMENDED_LAYER};")
    assert line.endswith(f"model_size picks {labels[larger]}; imagenet_top1 ties m1 and m2)")  # one card: the metric
    assert "knn" in result.out and "model_size" in result.out  # table columns


def test_rank_help_says_which_ranker_answers_which_question(cli) -> None:
    result = cli("rank", "--help")
    text = " ".join(result.out.split())  # rich wraps the help to the terminal
    assert result.code == 0
    assert "Across architectures: the checkpoint card." in text
    assert "Within one architecture" in text and "nothing measured beats a coin" in text
    assert f"{DEFAULT_METRICS[0].replace('tlogme', 'TLogME')} on {RECOMMENDED_LAYER}" in text
