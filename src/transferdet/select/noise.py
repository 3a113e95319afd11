"""The seed noise select's race judges its differences by, by default: how much one fine-tune of a
source differs from the next, measured on the benchmark stores and shipped with its provenance
(``seed_noise.json``, rebuilt by ``benchmarks/real/seed_noise.py --write``; docs/results.md)."""

from __future__ import annotations

import json
from importlib import resources

SE_MULTIPLE = 2.0  # a difference within 2 standard deviations of a paired difference is a tie


def shipped_noise() -> dict:
    """The shipped measurement: ``provenance``, ``end`` (per architecture and ``all``) and ``rungs``."""
    return json.loads(resources.files("transferdet.select").joinpath("seed_noise.json").read_text(encoding="utf-8"))


def noise_tolerance(tolerance: float, noise: dict | None = None) -> tuple[float, str]:
    """The tolerance a race judges by: the larger of the user's ``tolerance`` (AP50) and
    :data:`SE_MULTIPLE` standard deviations of the difference of two single fine-tunes (all
    architectures), with where it came from."""
    noise = noise or shipped_noise()
    sd = float(noise["end"]["all"]["sd_difference"])
    measured = SE_MULTIPLE * sd
    if tolerance >= measured:
        return tolerance, "--tolerance"
    return (
        measured,
        f"seed noise: {SE_MULTIPLE:g} x {sd} AP50 (sd of a paired difference, {noise['provenance']['end']})",
    )
