"""A user's own backbone through --plugin: the toy attention network of docs/examples is ranked,
trained with Mask R-CNN and RetinaNet under the AdamW 1x recipe, and benchmarked (locally and on
Ray workers, which import the plug-in themselves)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bench_kit import TINY_TRAINING, results, write_config
from transferdet.bench.config import load_config
from transferdet.bench.runner import run_bench
from transferdet.bench.store import STORE_FILE
from transferdet.errors import TransferdetError
from transferdet.plugins import load_plugin

TOY = Path(__file__).resolve().parents[1] / "docs" / "examples" / "toy_attention_net.py"
SPEC = "timm:toy_attention_net"
HOOKS = "timm:toy_attention_net_hooks"  # the same network through timm's hook-based feature wrapper
TINY = ["iterations=2", "batch_size=2", "num_workers=0", "min_size=[64]", "max_size=64", "warmup_iterations=1"]


def test_rank_ranks_the_plugged_in_backbone(cli, synthetic):
    models = f"{SPEC},timm:resnet10t,{HOOKS}"
    args = ["--models", models, "--image-size", "64", "--max-images", "6", "--metrics", "logme,knn"]
    result = cli("--plugin", TOY, "rank", "--data", synthetic, *args, "--no-cache", "--device", "cpu", "--json")
    assert result.code == 0, result.err
    scores = {(r["model"], r["metric"]): r["score"] for r in result.json()}
    assert all(scores[(spec, m)] is not None for spec in (SPEC, HOOKS) for m in ("logme", "knn"))


def test_plugin_after_the_command_and_in_a_models_file(cli, synthetic, tmp_path):
    args = ["--image-size", "64", "--max-images", "6", "--metrics", "logme", "--no-cache", "--device", "cpu", "--json"]
    after = cli("rank", "--plugin", TOY, "--data", synthetic, "--models", f"{SPEC},timm:resnet10t", *args)
    assert after.code == 0, after.err
    models_file = tmp_path / "models.yaml"
    models_file.write_text(f"plugins: [{TOY.name}, marker.py]\nmodels: [{SPEC}, 'timm:resnet10t']\n")
    (tmp_path / TOY.name).symlink_to(TOY)  # relative to the models file
    (tmp_path / "marker.py").write_text("import pathlib\npathlib.Path(__file__).with_suffix('.imported').touch()\n")
    listed = cli("rank", "--data", synthetic, "--models-file", models_file, *args)
    assert listed.code == 0, listed.err
    assert {r["model"] for r in listed.json()} == {SPEC, "timm:resnet10t"}
    assert (tmp_path / "marker.imported").is_file()  # the file's own plug-in was imported
    models_file.write_text("plugins: my_net.py\nmodels: [timm:resnet10t]\n")
    bad = cli("rank", "--data", synthetic, "--models-file", models_file, *args)
    assert bad.code == 2 and "plugins: expected a list" in bad.err


@pytest.mark.parametrize(("spec", "detector"), [(SPEC, "mask_rcnn_fpn"), (SPEC, "retinanet"), (HOOKS, "fcos")])
def test_train_fits_the_plugged_in_backbone_under_the_adamw_1x_recipe(cli, synthetic, tmp_path, spec, detector):
    settings = [part for item in TINY for part in ("--set", item)]
    args = ["--data", synthetic, "--backbone", spec, "--detector", detector, "--recipe", "adamw_1x", *settings]
    result = cli("--plugin", TOY, "train", *args, "--out", tmp_path / "run", "--device", "cpu", "--json")
    assert result.code == 0, result.err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["iterations"] == 2 and metrics["AP"] is not None


@pytest.fixture(scope="module")
def plugin_bench(tmp_path_factory) -> Path:
    from transferdet.data.synthetic import SynthConfig, synthesize

    folder = tmp_path_factory.mktemp("plugin-bench")
    synthesize(SynthConfig(source="shapes", images=24, size=64, seed=5), folder / "data")
    os.symlink(TOY, folder / "toy_attention_net.py")
    models = [{"name": "toy", "spec": SPEC}, {"name": "resnet10t", "spec": "timm:resnet10t@random"}]
    write_config(folder, models, plugins=["toy_attention_net.py"], recipe_overrides={**TINY_TRAINING, "iterations": 2})
    return folder


@pytest.mark.cluster
def test_the_bench_imports_its_plugins_locally_and_on_ray_workers(plugin_bench):
    config = load_config(plugin_bench / "bench.yaml")
    assert config.plugins == [str(plugin_bench / "toy_attention_net.py")]  # relative to the config file
    local = run_bench(config, plugin_bench / "local", device="cpu")
    assert (local.ran, local.failed) == (4, [])
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'transferdet[ray]')")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        remote = run_bench(config, plugin_bench / "ray", executor="ray", device="cpu")
    finally:
        ray.shutdown()
    assert (remote.ran, remote.failed) == (4, [])
    assert results(plugin_bench / "ray" / STORE_FILE) == results(plugin_bench / "local" / STORE_FILE)


def test_a_broken_plugin_is_one_line_naming_it(cli, tmp_path):
    missing = cli("--plugin", tmp_path / "nope.py", "recipe", "list")
    assert missing.code == 2 and missing.err.strip() == f"error: plug-in {tmp_path / 'nope.py'}: no such file"
    broken = tmp_path / "broken.py"
    broken.write_text("raise ValueError('half-written plug-in')\n")
    result = cli("--plugin", broken, "recipe", "list")
    assert result.code == 2 and "plug-in" in result.err and "ValueError: half-written plug-in" in result.err
    assert len(result.err.strip().splitlines()) == 1
    with pytest.raises(TransferdetError, match="plug-in no_such_module: ModuleNotFoundError"):
        load_plugin("no_such_module")
