"""Training precision: the recipe's ``precision`` runs the step under autocast (bf16 here on the
CPU), a resumed bf16 run equals an uninterrupted one, and runs written with the older ``amp`` key
still load."""

from __future__ import annotations

import json

import pytest
import torch

from transferdet import precision
from transferdet.train.engine import TrainJob, train
from transferdet.train.recipes import Recipe, load_recipe

SMALL = ["iterations=8", "batch_size=2", "checkpoint_every=4", "num_workers=0", "warmup_iterations=2"]


class Stop(Exception):
    """Raised from the iteration callback to stop a run as a kill would, after a checkpoint."""


def _losses(run) -> list[float]:
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    return [row["loss"] for row in rows if "loss" in row]


def _job(synthetic, out, mode: str) -> TrainJob:
    # 96 px, not 64: at 64 px FCOS's P7 convolution sees a 1 x 1 map, and oneDNN's bf16 weight
    # gradient of a 3 x 3 stride-2 convolution on a 1 x 1 input is garbage on AVX512-BF16 CPUs
    # (values up to 1e37 and NaN, different each call: benchmarks/RESULTS.md)
    recipe = load_recipe("quick", [*SMALL, f"precision={mode}", "min_size=[96]", "max_size=96"])
    return TrainJob(synthetic, "timm:resnet10t", "fcos", recipe, out, seed=1, device="cpu")


def test_bf16_training_runs_under_autocast_and_resumes_exactly(synthetic, tmp_path):
    train(_job(synthetic, tmp_path / "fp32", "fp32"))
    train(_job(synthetic, tmp_path / "bf16", "bf16"))
    full, low = _losses(tmp_path / "fp32"), _losses(tmp_path / "bf16")
    assert len(full) == len(low) == 8
    # the first step sees the same weights and batch: bf16 moves its loss by rounding only
    assert low[0] != full[0] and low[0] == pytest.approx(full[0], rel=0.05)

    def stop_after_six(iteration: int, total: int, scalars: dict) -> None:
        if iteration == 6:
            raise Stop

    with pytest.raises(Stop):
        train(_job(synthetic, tmp_path / "killed", "bf16"), on_iteration=stop_after_six)
    assert torch.load(tmp_path / "killed" / "checkpoint.pt", weights_only=False)["iteration"] == 4
    train(_job(synthetic, tmp_path / "killed", "bf16"), resume=True)
    a = torch.load(tmp_path / "bf16" / "checkpoint.pt", weights_only=False)
    b = torch.load(tmp_path / "killed" / "checkpoint.pt", weights_only=False)
    assert a["iteration"] == b["iteration"] == 8
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert _losses(tmp_path / "killed") == low


def test_training_precision_defaults_and_the_older_amp_key():
    assert precision.training_precision("auto", "cpu") == "fp32"  # bf16 on CPUs is the user's choice
    assert precision.training_precision("bf16", "cpu") == "bf16"
    assert precision.needs_grad_scaler("fp16") and not precision.needs_grad_scaler("bf16")
    assert Recipe(iterations=5, amp=False).precision == "fp32"
    assert Recipe(iterations=5, amp=True).precision == "auto"
    assert "amp" not in Recipe(iterations=5).model_dump()
