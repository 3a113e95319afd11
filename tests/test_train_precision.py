"""Training precision: the recipe's ``precision`` runs the step under autocast (bf16 here on the
CPU), a resumed bf16 run equals an uninterrupted one, and runs written with the older ``amp`` key
still load."""

from __future__ import annotations

import json

import pytest
import torch

from transferdet import precision
from transferdet.models.backbones import build_backbone
from transferdet.models.detectors import DetectorConfig, build_detector
from transferdet.train.engine import train
from transferdet.train.job import TrainJob
from transferdet.train.recipes import Recipe, load_recipe

SMALL = ["iterations=8", "batch_size=2", "checkpoint_every=4", "num_workers=0", "warmup_iterations=2"]


class Stop(Exception):
    """Raised from the iteration callback to stop a run as a kill would, after a checkpoint."""


def _losses(run) -> list[float]:
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    return [row["loss"] for row in rows if "loss" in row]


def _job(synthetic, out, mode: str) -> TrainJob:
    # 64 px: FCOS's P7 convolution sees a 1 x 1 map, where oneDNN's bf16 weight gradient is garbage
    # on AVX512-BF16 and AMX CPUs (different each call); P6/P7 run in float32 (Float32P6P7)
    recipe = load_recipe("quick", [*SMALL, f"precision={mode}", "min_size=[64]", "max_size=64"])
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


def test_p6_p7_and_ssd_extras_stay_float32_under_bf16_autocast():
    # oneDNN's bf16 weight gradient of P7's 3 x 3 convolution on a 1 x 1 P6 map is garbage on
    # AVX512-BF16 and AMX CPUs, different on each call; FCOS and RetinaNet compute these two levels
    # in float32, so their gradients under bf16 autocast are exactly float32's
    model = build_detector(build_backbone("timm:resnet10t"), DetectorConfig("fcos", 3))
    extra = model.backbone.fpn.extra_blocks
    torch.manual_seed(0)
    p5 = torch.randn(2, 256, 2, 2).bfloat16().float()  # exact in both types

    def p7_gradient(low: bool) -> torch.Tensor:
        extra.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=low):
            levels, names = extra([p5.bfloat16() if low else p5], [p5], ["p5"])
        assert names == ["p5", "p6", "p7"] and levels[0] is not None
        levels[2].float().square().sum().backward()
        return extra.p7.weight.grad.clone()

    reference = p7_gradient(low=False)
    for _ in range(5):
        assert torch.equal(p7_gradient(low=True), reference)

    ssd = build_detector(build_backbone("timm:resnet10t"), DetectorConfig("ssd", 3)).backbone
    maps = {"c3": torch.zeros(2, 128, 8, 8), "c4": torch.zeros(2, 256, 4, 4)}
    maps["c5"] = torch.randn(2, 512, 2, 2).bfloat16().float()  # the second extra block sees a 1 x 1 map
    ssd.body = _Fixed(maps)

    def last_extra_gradient(low: bool) -> torch.Tensor:
        ssd.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=low):
            out = ssd(torch.zeros(2, 3, 64, 64))
        out[str(len(out) - 1)].float().square().sum().backward()
        return ssd.extras[-1][2].weight.grad.clone()

    reference = last_extra_gradient(low=False)
    for _ in range(5):
        assert torch.equal(last_extra_gradient(low=True), reference)


class _Fixed(torch.nn.Module):
    """A body that returns the same maps (in bf16 under autocast, as a bf16 body would)."""

    def __init__(self, maps: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.maps = maps

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        low = torch.is_autocast_enabled("cpu")
        return {k: v.bfloat16() if low else v for k, v in self.maps.items()}
