"""Forward-pass precision: what ``auto`` picks on each device, errors for unknown names, and
features under bf16 autocast that differ from fp32 by the type's rounding, not more."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from transferdet import precision
from transferdet.data import formats
from transferdet.errors import TransferdetError
from transferdet.models.backbones import build_backbone
from transferdet.transfer.features import extract_box_features
from transferdet.transfer.rank import RankSettings, rank


@pytest.mark.parametrize(
    ("avx512_bf16", "amx", "probe", "expected"),
    [
        (True, True, 0.5, "bf16"),  # AMX: bf16, whatever a probe would say (it is not run)
        (False, True, 0.5, "bf16"),
        (True, False, 1.8, "bf16"),  # AVX512-BF16 alone: the probe decides (an AMD EPYC measured 1.9)
        (True, False, 0.9, "fp32"),  # (an Intel Xeon ran ResNet-18 at 0.7x in bf16)
        (False, False, 9.0, "fp32"),  # no bf16 hardware: emulated, never faster
    ],
)
def test_auto_on_a_cpu_uses_bf16_where_it_is_faster(monkeypatch, avx512_bf16, amx, probe, expected):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    probes = []
    monkeypatch.setattr(precision, "bf16_probe_speedup", lambda: probes.append(1) or probe)
    assert precision.resolve("auto", "cpu") == expected
    assert probes == ([1] if avx512_bf16 and not amx else [])
    assert precision.resolve("fp16", "cpu") == "fp16" and precision.resolve("fp32", "cuda") == "fp32"


def test_the_bf16_probe_measures_once_and_leaves_the_seeded_random_state_alone():
    torch.manual_seed(3)
    state = torch.get_rng_state()
    precision.bf16_probe_speedup.cache_clear()
    speedup = precision.bf16_probe_speedup()
    assert torch.equal(torch.get_rng_state(), state)
    assert 0.0 < speedup < float("inf") and precision.bf16_probe_speedup() == speedup  # measured once


def test_auto_on_a_gpu_prefers_bf16_where_supported(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert precision.resolve("auto", "cuda:0") == "fp16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert precision.resolve("auto", "cuda") == "bf16"


def test_an_unknown_precision_is_a_one_line_error(cli, synthetic):
    with pytest.raises(TransferdetError, match=r"--precision 'int8': choose from fp32, bf16, fp16, auto"):
        RankSettings(precision="int8")
    result = cli("rank", "--data", synthetic, "--models", "timm:resnet10t", "--precision", "half", "--no-cache")
    assert result.code == 2 and "--precision 'half'" in result.err


def test_bf16_features_follow_fp32_within_bf16_rounding(synthetic, tmp_path):
    records = formats.read(synthetic).records("train")[:3]
    torch.manual_seed(0)
    backbone = build_backbone("timm:resnet10t")
    full = extract_box_features(backbone, records, "c4", image_size=64)
    low = extract_box_features(backbone, records, "c4", image_size=64, precision="bf16")
    assert low.features.dtype == np.float64 and low.features.shape == full.features.shape
    error = np.linalg.norm(low.features - full.features) / np.linalg.norm(full.features)
    assert 1e-5 < error < 5e-2  # autocast did run in bf16 (8 bits of mantissa), and only rounded
    settings = {"layers": "c4", "image_size": 64, "max_images": 3, "device": "cpu"}
    rows = {
        p: rank(synthetic, ["timm:resnet10t@random"], ["logme"], settings=RankSettings(**settings, precision=p),
                cache_dir=tmp_path)[0]["score"]
        for p in ("fp32", "bf16")
    }  # fmt: skip
    assert len(list(tmp_path.glob("*.npz"))) == 2  # one cache entry per precision
    assert rows["fp32"] != rows["bf16"] and rows["bf16"] == pytest.approx(rows["fp32"], rel=0.05)
