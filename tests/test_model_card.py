"""What a model's entry states beside its spec (input mean/std, ImageNet top-1) reaches every stage:
ranking (and its cache), fine-tuning, a reloaded run, the bench's jobs; bad entries are one-line
errors naming the file."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
import yaml

from bench_kit import MODELS, write_config
from transferdet.bench.config import load_config
from transferdet.bench.jobs import plan
from transferdet.bench.store import Store
from transferdet.errors import TransferdetError
from transferdet.models.backbones import build_backbone
from transferdet.models.model_card import ModelEntry
from transferdet.models.specs import parse_spec
from transferdet.run_detector import load_detector
from transferdet.runs import RunDir
from transferdet.train.engine import train
from transferdet.train.job import TrainJob
from transferdet.train.recipes import load_recipe
from transferdet.transfer.rank import RankSettings, rank

SIGNED = {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}


def test_an_entry_states_normalisation_and_top1():
    spec = ModelEntry.model_validate({"spec": "timm:resnet10t", **SIGNED, "imagenet_top1": 66.5}).model_spec()
    assert (spec.mean, spec.std, spec.top1) == ((0.5,) * 3, (0.5,) * 3, 66.5)
    backbone = build_backbone(spec)
    assert backbone.mean == (0.5, 0.5, 0.5) and "model's entry" in backbone.normalisation_source
    assert ModelEntry.model_validate("timm:resnet10t").name == "timm:resnet10t"  # a bare spec


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"spec": "timm:resnet10t", "mean": [0.5, 0.5, 0.5]}, "states mean but not std"),
        ({"spec": "timm:resnet10t", "mean": [0.5] * 3, "std": [0.5, -1, 0.5]}, "std must be 3 positive numbers"),
        ({"spec": "timm:resnet10t", "imagenet_top1": 180}, "less than or equal to 100"),
        ({"spec": "timm:resnet10t", "means": [0.5] * 3}, "means: Extra inputs are not permitted"),
    ],
)
def test_a_bad_entry_in_a_models_file_is_a_one_line_error(cli, synthetic, tmp_path, entry, message):
    listing = tmp_path / "models.yaml"
    listing.write_text(yaml.safe_dump({"models": ["timm:resnet10t", entry]}))
    result = cli("rank", "--data", synthetic, "--models-file", listing, "--no-cache", "--device", "cpu")
    assert result.code != 0 and len(result.err.strip().splitlines()) == 1
    assert "models.yaml" in result.err and message in result.err


def test_rank_ranks_the_stated_top1_as_a_baseline(cli, synthetic, tmp_path):
    listing = tmp_path / "models.yaml"
    entries = [
        {"spec": "timm:resnet10t", "imagenet_top1": 66.5},
        {"spec": "timm:mobilenetv3_small_050", "imagenet_top1": 57.9, **SIGNED},
        "timm:resnet18",  # states none: a random init is at chance
    ]
    listing.write_text(yaml.safe_dump(entries))
    args = ["--image-size", "64", "--max-images", "6", "--metrics", "logme,imagenet_top1", "--device", "cpu"]
    result = cli("rank", "--data", synthetic, "--models-file", listing, "--no-cache", "--json", *args)
    assert result.code == 0, result.err
    rows = result.json()
    top1 = {r["model"]: r["score"] for r in rows if r["metric"] == "imagenet_top1"}
    assert top1 == {"timm:resnet10t@random": 66.5, "timm:mobilenetv3_small_050@random": 57.9, "timm:resnet18": 0.1}
    assert sum(r["metric"] == "logme" for r in rows) == 3


def test_a_stated_normalisation_changes_the_features_and_their_cache_key(synthetic, tmp_path):
    settings = RankSettings(layers="c5", image_size=64, max_images=4, device="cpu")  # one layer: one cache file
    plain = parse_spec("timm:resnet10t@random")
    stated = replace(plain, mean=(0.5,) * 3, std=(0.5,) * 3)
    first = rank(synthetic, [plain], ["logme"], settings=settings, cache_dir=tmp_path / "cache")
    second = rank(synthetic, [stated], ["logme"], settings=settings, cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2  # not served the other's features
    assert first[0]["score"] != second[0]["score"]


def test_a_run_reloads_with_the_normalisation_it_was_trained_with(synthetic, tmp_path):
    spec = replace(parse_spec("timm:resnet10t@random"), mean=(0.5,) * 3, std=(0.25,) * 3)
    recipe = load_recipe("quick", ["iterations=1", "batch_size=2", "num_workers=0", "min_size=[64]", "max_size=64"])
    train(TrainJob(synthetic, spec, "fcos", recipe, tmp_path / "run", device="cpu"))
    detector, _ = load_detector(RunDir(tmp_path / "run"))
    assert detector.transform.image_mean == [0.5] * 3 and detector.transform.image_std == [0.25] * 3
    assert detector.backbone.body.mean == (0.5,) * 3  # what ranking from ARCH@RUN_DIR normalises with
    assert RunDir(tmp_path / "run").manifest()["job"]["backbone"] == "timm:resnet10t@random"


def test_the_bench_hands_the_card_to_its_jobs(tmp_path):
    entry = {"name": "signed", "spec": "timm:resnet10t@random", **SIGNED, "imagenet_top1": 66.5}
    config = load_config(write_config(tmp_path, [MODELS[1], entry], trials=1))
    jobs = {(j.kind, j.model): j for j in plan(config, "cpu")}
    assert jobs[("rank", "signed")].definition["card"] == {**SIGNED, "imagenet_top1": 66.5}
    assert jobs[("train", "signed")].definition["card"] == SIGNED  # a top-1 changes no training
    assert "card" not in jobs[("rank", "mobilenet")].definition or not jobs[("rank", "mobilenet")].definition["card"]
    unstated = load_config(write_config(tmp_path, MODELS))
    # a model that states nothing keeps the identity its jobs had before entries could state more
    assert {j.id for j in plan(unstated, "cpu") if j.model == "mobilenet"} == {
        j.id for j in plan(config, "cpu") if j.model == "mobilenet"
    }


def test_a_bad_entry_in_a_bench_config_names_the_file(tmp_path):
    path = write_config(tmp_path, [MODELS[0], {"spec": "timm:resnet10t", "mean": [0.5] * 3}])
    with pytest.raises(TransferdetError, match=r"bench.yaml: models.1: .*states mean but not std"):
        load_config(path)


def test_a_detector_run_is_a_source_for_fine_tuning(synthetic, tmp_path):
    """``ARCH@RUN_DIR`` (a detector pretrained elsewhere) builds its detector's body, with the
    normalisation it was trained with, and fine-tunes from it."""
    spec = replace(parse_spec("timm:resnet10t@random"), mean=(0.5,) * 3, std=(0.25,) * 3)
    small = ["iterations=1", "batch_size=2", "num_workers=0", "min_size=[64]", "max_size=64"]
    train(TrainJob(synthetic, spec, "fcos", load_recipe("quick", small), tmp_path / "source", device="cpu"))
    trained, _ = load_detector(RunDir(tmp_path / "source"))
    body = build_backbone(f"timm:resnet10t@{tmp_path / 'source'}")
    expected = trained.backbone.body.state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in body.state_dict().items() if k in expected)
    assert body.mean == (0.5,) * 3 and "manifest" in body.normalisation_source
    train(
        TrainJob(
            synthetic, f"timm:resnet10t@{tmp_path / 'source'}", "fcos", load_recipe("quick", small), tmp_path / "t"
        )
    )
    with pytest.raises(TransferdetError, match="trained timm:resnet10t, not timm:resnet18"):
        build_backbone(f"timm:resnet18@{tmp_path / 'source'}")


def test_a_list_of_background_counts_ranks_with_each_and_keeps_them_apart(tmp_path):
    config = load_config(write_config(tmp_path, MODELS, background=[0, 2]))
    ranking = [j for j in plan(config, "cpu") if j.kind == "rank"]
    assert sorted({(j.features, j.definition["background"]) for j in ranking}) == [("local+bg0", 0), ("local+bg2", 2)]
    assert len(ranking) == 2 * len(MODELS)
    with Store(tmp_path / "results.sqlite") as store:
        store.add_jobs(ranking)
        for job in ranking:
            row = {"layer": "c5", "features": "local", "metric": "logme", "score": 1.0, "reason": None}
            store.finished(job, {"scores": [row]}, 1.0)
        stored = {(r["model"], r["features"]) for r in store.scores()}
    assert stored == {(m["name"], kind) for m in MODELS for kind in ("local+bg0", "local+bg2")}
    with pytest.raises(TransferdetError, match="background"):
        load_config(write_config(tmp_path, MODELS, background=[0, -1]))


def test_a_random_initialisation_states_chance_top1_so_the_card_orders_it_below_a_carded_checkpoint(
    cli, synthetic, tmp_path
):
    """A random init's ImageNet top-1 is chance (0.1%, as the bench configs state it), so a list of
    carded checkpoints and random inits is ordered by the card first, whatever the metric prefers."""
    listing = tmp_path / "models.yaml"
    listing.write_text("- {spec: 'timm:resnet10t@random', imagenet_top1: 66.5}\n- timm:resnet18@random\n")
    args = ["rank", "--data", synthetic, "--models-file", listing, "--metrics", "logme,imagenet_top1", "--layer", "c5",
            "--image-size", 64, "--max-images", 8, "--device", "cpu", "--no-cache", "--out", tmp_path]  # fmt: skip
    result = cli(*args)
    assert result.code == 0, result.err
    top1 = {r["model"]: r["score"] for r in json.loads((tmp_path / "scores.json").read_text())
            if r["metric"] == "imagenet_top1"}  # fmt: skip
    assert top1 == {"timm:resnet10t@random": 66.5, "timm:resnet18@random": 0.1}
    line = next(line for line in result.out.splitlines() if line.startswith("recommended:"))
    how = "(first by the card's ImageNet top-1, then logme on c5"
    assert line.startswith(f"recommended: timm:resnet10t@random {how}"), line
