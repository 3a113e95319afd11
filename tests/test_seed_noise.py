"""The shipped seed noise (select/seed_noise.json) is what benchmarks/real/seed_noise.py measures on
the committed stores, and the tolerance select judges by is the larger of the user's and 2 SD."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from transferdet.select.noise import noise_tolerance, shipped_noise

REAL = Path(__file__).resolve().parents[1] / "benchmarks" / "real"


def test_the_shipped_noise_is_the_stores_measurement():
    if not (REAL / "shelf" / "results.sqlite").is_file() or not (REAL / "select-shelf" / "results.sqlite").is_file():
        pytest.skip("the benchmark stores are not in this checkout")
    spec = importlib.util.spec_from_file_location("seed_noise", REAL / "seed_noise.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.measured() == shipped_noise()
    assert shipped_noise()["end"]["all"]["pairs"] == 90  # 18 sources x 5 targets, two trials each


def test_the_tolerance_is_the_larger_of_the_users_and_twice_the_noise():
    noise = {"end": {"all": {"sd_difference": 0.04}}, "provenance": {"end": "a store"}}
    assert noise_tolerance(0.01, noise) == (0.08, "seed noise: 2 x 0.04 AP50 (sd of a paired difference, a store)")
    assert noise_tolerance(0.1, noise) == (0.1, "--tolerance")
