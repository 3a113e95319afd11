"""Training: recipes validate, a run killed with SIGKILL and resumed equals an uninterrupted one,
a NaN loss stops the run keeping the last good checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from transferdet.errors import TransferdetError
from transferdet.train import engine
from transferdet.train.engine import train
from transferdet.train.job import TrainJob
from transferdet.train.recipes import RECIPES, load_recipe
from transferdet.train.schedule import learning_rate_factor

SMALL = ["iterations=12", "batch_size=2", "checkpoint_every=4", "num_workers=0", "warmup_iterations=2"]


def test_every_named_recipe_validates_and_errors_are_one_line():
    for name in RECIPES:
        recipe = load_recipe(name)
        assert recipe.name == name and (recipe.iterations or recipe.epochs)
    assert load_recipe("tmod_frozen").frozen_parts() == "backbone body frozen (heads only)"
    assert load_recipe("voc_c4_24k").detector == "faster_rcnn_c4"
    assert load_recipe("quick", ["iterations=5"]).epochs is None
    with pytest.raises(TransferdetError, match="recipe quick: learning_rate: Extra inputs are not permitted"):
        load_recipe("quick", ["learning_rate=0.1"])
    with pytest.raises(TransferdetError, match="recipe quick: batch_size: Input should be a valid integer"):
        load_recipe("quick", ["batch_size=big"])
    with pytest.raises(TransferdetError, match="unknown recipe 'fast'"):
        load_recipe("fast")


def test_learning_rate_schedule():
    recipe = load_recipe("voc_c4_24k")
    assert learning_rate_factor(recipe, 0, 24000) == pytest.approx(0.001)
    assert learning_rate_factor(recipe, 100, 24000) == 1.0
    assert learning_rate_factor(recipe, 18000, 24000) == pytest.approx(0.1)
    assert learning_rate_factor(recipe, 22000, 24000) == pytest.approx(0.01)


def run_cli(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "transferdet", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def train_args(synthetic: Path, out: Path) -> list[str]:
    args = [
        "train",
        "--data",
        str(synthetic),
        "--backbone",
        "timm:resnet18",
        "--detector",
        "fcos",
        "--out",
        str(out),
        "--recipe",
        "quick",
        "--device",
        "cpu",
        "--seed",
        "3",
        "--json",
    ]
    for item in SMALL:
        args += ["--set", item]
    return args


def test_resume_after_sigkill_equals_uninterrupted(synthetic, tmp_path, cli):
    whole = run_cli(train_args(synthetic, tmp_path / "whole"))
    assert whole.wait(timeout=600) == 0, whole.stderr.read().decode()
    killed = run_cli(train_args(synthetic, tmp_path / "killed"))
    checkpoint = tmp_path / "killed" / "checkpoint.pt"
    deadline = time.time() + 300
    while not checkpoint.exists() and time.time() < deadline and killed.poll() is None:
        time.sleep(0.05)
    assert killed.poll() is None, "the run finished before it could be killed"
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    stopped_at = torch.load(checkpoint, weights_only=False)["iteration"]
    assert 4 <= stopped_at < 12
    resumed = run_cli([*train_args(synthetic, tmp_path / "killed"), "--resume"])
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read().decode()
    a = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=False)
    b = torch.load(checkpoint, weights_only=False)
    assert a["iteration"] == b["iteration"] == 12
    assert a["model"].keys() == b["model"].keys()
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    metrics_a = json.loads((tmp_path / "whole" / "metrics.json").read_text())
    metrics_b = json.loads((tmp_path / "killed" / "metrics.json").read_text())
    assert metrics_a == metrics_b
    log = [json.loads(line) for line in (tmp_path / "killed" / "log.jsonl").read_text().splitlines()]
    assert [row["iteration"] for row in log] == list(range(1, 13))
    evaluated = cli("eval", "--data", synthetic, "--checkpoint", tmp_path / "whole", "--device", "cpu", "--json")
    assert evaluated.code == 0, evaluated.err
    for key in ("AP", "AP50", "AP75"):
        assert evaluated.json()[key] == pytest.approx(metrics_a[key], abs=1e-9)
    assert (tmp_path / "whole" / "summary.png").stat().st_size > 5000
    drawn = cli(
        "predict",
        "--checkpoint",
        tmp_path / "whole",
        synthetic / "test",
        "--out",
        tmp_path / "pred",
        "--score-threshold",
        "0.0",
        "--device",
        "cpu",
    )
    assert drawn.code == 0, drawn.err
    predicted = json.loads((tmp_path / "pred" / "predictions.json").read_text())
    assert len(predicted) == len(list((synthetic / "test").iterdir()))
    assert all(
        set(p["labels"]) <= set(json.loads((tmp_path / "whole" / "recipe.json").read_text())["detector"]["classes"])
        for p in predicted
    )
    assert len(list((tmp_path / "pred").glob("*.png"))) == len(predicted)
    again = run_cli(train_args(synthetic, tmp_path / "whole"))
    assert again.wait(timeout=60) == 2 and b"holds a run already" in again.stderr.read()


def test_nan_loss_stops_and_keeps_last_good_checkpoint(synthetic, tmp_path, monkeypatch):
    build = engine.build_model

    def poisoned(*args, **kwargs):
        model = build(*args, **kwargs)
        forward, calls = model.forward, {"n": 0}

        def forward_with_nan(images, targets=None):
            losses = forward(images, targets)
            if model.training:
                calls["n"] += 1
                if calls["n"] == 7:
                    losses["classification"] = losses["classification"] * float("nan")
            return losses

        model.forward = forward_with_nan
        return model

    monkeypatch.setattr(engine, "build_model", poisoned)
    job = TrainJob(
        synthetic, "timm:resnet18", "fcos", load_recipe("quick", SMALL), tmp_path / "run", seed=1, device="cpu"
    )
    with pytest.raises(
        TransferdetError, match=r"loss is nan at iteration 6 \(classification nan.*last good checkpoint"
    ):
        train(job)
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["iteration"] == 4
    assert not (tmp_path / "run" / "metrics.json").exists()


@pytest.mark.cluster
def test_ddp_two_cpu_processes_on_gloo(synthetic, tmp_path):
    """torchrun with 2 processes: the run completes, files are written once, ranks agree, and an
    epoch is an epoch (each step consumes a batch in each process)."""
    out = tmp_path / "ddp"
    args = train_args(synthetic, out)
    args[args.index("iterations=12")] = "epochs=0.75"  # of 32 training images, 2 x 2 per step: 6 steps
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29531",
        "-m",
        "transferdet",
        *args,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    printed = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(printed) == 1  # only rank 0 reports
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["ranks_agree"] is True and metrics["iterations"] == 6
    assert json.loads(printed[0])["AP"] == metrics["AP"]
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [row["iteration"] for row in log] == list(range(1, 7))  # one line per iteration, not per process
    state = torch.load(out / "checkpoint.pt", weights_only=False)
    assert state["iteration"] == 6 and len(state["random"]) == 2  # each process's random state


def test_fcos_box_regression_does_not_die(bccd, tmp_path):
    """With torchvision's zero-bias init, seed 2 on bccd left FCOS's box regression dead from the
    first iterations (GIoU loss 1.0 throughout, AP 0); it must learn."""
    recipe = load_recipe("quick", ["iterations=10", "checkpoint_every=1000"])
    job = TrainJob(
        bccd,
        "torchvision:mobilenet_v2@random",
        "fcos",
        recipe,
        tmp_path / "run",
        seed=2,
        device="cpu",
        test_split="val",
    )
    seen = []
    with pytest.warns(UserWarning):
        train(job, on_iteration=lambda i, n, s: seen.append(s["bbox_regression"]))
    assert max(seen[-3:]) < 0.95, seen


def test_aspect_ratio_grouping_batches_one_orientation_and_resumes_exactly():
    import numpy as np

    from transferdet.train.sampling import StreamBatchSampler

    groups = np.array([0, 1] * 10 + [0] * 5)  # 15 landscape, 10 portrait images
    full = list(StreamBatchSampler(len(groups), 4, seed=3, start=0, stop=30, groups=groups))
    assert len(full) == 30
    assert all(len({int(groups[i]) for i, _ in batch}) == 1 for batch in full)
    assert {int(groups[batch[0][0]]) for batch in full} == {0, 1}
    positions = [p for batch in full for _, p in batch]
    assert len(set(positions)) == len(positions)  # every stream position used once
    # a run resumed at iteration 17 sees exactly the batches it would have seen
    assert list(StreamBatchSampler(len(groups), 4, seed=3, start=17, stop=30, groups=groups)) == full[17:]
    # two processes split each global batch between them
    ranks = [list(StreamBatchSampler(len(groups), 2, 3, 0, 30, rank=r, world=2, groups=groups)) for r in (0, 1)]
    assert [a + b for a, b in zip(*ranks, strict=True)] == full
    # one orientation only: the plain stream, unchanged
    plain = list(StreamBatchSampler(25, 4, 3, 0, 10))
    assert list(StreamBatchSampler(25, 4, 3, 0, 10, groups=np.zeros(25, dtype=int))) == plain


def test_mask_rcnn_trains_on_the_instance_masks(synthetic, tmp_path):
    """The loader gives Mask R-CNN its targets' masks (torchvision refuses targets without them)."""
    recipe = load_recipe("quick", ["iterations=1", "batch_size=2", "num_workers=0"])
    job = TrainJob(synthetic, "timm:resnet10t@random", "mask_rcnn_fpn", recipe, tmp_path / "run", device="cpu")
    seen = []
    train(job, on_iteration=lambda i, n, s: seen.append(s))
    assert seen[0]["loss_mask"] > 0 and (tmp_path / "run" / "metrics.json").is_file()


def test_rois_per_image_sets_the_rcnn_box_sampler(synthetic):
    from transferdet.data.loader import load_dataset

    dataset = load_dataset(synthetic)
    records = dataset.records("train")
    recipe = load_recipe("quick", ["rois_per_image=64"])
    job = TrainJob(synthetic, "timm:resnet10t@random", "faster_rcnn_fpn", recipe, Path("unused"), device="cpu")
    assert engine.build_model(job, dataset, records).roi_heads.fg_bg_sampler.batch_size_per_image == 64
    default = TrainJob(synthetic, "timm:resnet10t@random", "faster_rcnn_fpn", load_recipe("quick"), Path("unused"))
    assert engine.build_model(default, dataset, records).roi_heads.fg_bg_sampler.batch_size_per_image == 512
    fcos = TrainJob(synthetic, "timm:resnet10t@random", "fcos", recipe, Path("unused"))
    assert engine.build_model(fcos, dataset, records).detector_kind == "fcos"  # ignored by one-stage detectors
    with pytest.raises(TransferdetError, match="rois_per_image"):
        load_recipe("quick", ["rois_per_image=0"])


def test_training_flushes_denormals_and_restores_the_default():
    if not torch.set_flush_denormal(False):
        pytest.skip("this CPU cannot flush denormals")
    tiny = torch.tensor([1e-40], dtype=torch.float32)
    assert (tiny * 1.0).item() > 0.0
    with engine.flushed_denormals():
        assert (tiny * 1.0).item() == 0.0
    assert (tiny * 1.0).item() > 0.0
