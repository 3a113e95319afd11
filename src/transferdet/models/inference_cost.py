"""What a detector costs at inference: parameters, FLOPs and batch-1 latency, measured as the field's
speed tables measure them (timm's ``benchmark.py``, ultralytics' model tables): warm-up runs first,
the thread count pinned and stated, the median and interquartile range over at least ``runs`` runs
or ``seconds`` of them, postprocessing (NMS) included, the device named.

FLOPs are ``torch.utils.flop_counter.FlopCounterMode``'s: a multiply-add counts as 2 FLOPs
(convolutions and matrix products; elementwise operations, RoI-Align and NMS count nothing).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

FLOPS_CONVENTION = "FlopCounterMode (a multiply-add counts 2; RoI-Align and NMS count nothing)"


@dataclass(frozen=True)
class InferenceCost:
    params: int
    flops: int  # one forward pass at batch 1 (a multiply-add counts 2)
    latency_ms: float  # median
    latency_iqr_ms: tuple[float, float]  # the first and third quartiles
    runs: int
    threads: int
    device: str

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "latency_iqr_ms": list(self.latency_iqr_ms)}


def parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_flops(run: Callable[[], Any]) -> int:
    """FLOPs of one call of ``run`` (``FlopCounterMode``'s convention)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        run()
    return int(counter.get_total_flops())


def time_runs(
    run: Callable[[], Any], device: str, runs: int = 30, seconds: float = 10.0, warmup: int = 3
) -> list[float]:
    """Wall times in ms of ``run`` after ``warmup`` calls: until ``runs`` calls or ``seconds`` have
    passed (at least 3 calls); CUDA work is waited for before each clock."""
    wait = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    with torch.no_grad():
        for _ in range(warmup):
            run()
        wait()
        times: list[float] = []
        start = time.perf_counter()
        while len(times) < 3 or (len(times) < runs and time.perf_counter() - start < seconds):
            began = time.perf_counter()
            run()
            wait()
            times.append((time.perf_counter() - began) * 1000)
    return times


def detector_cost(
    model: torch.nn.Module, image: torch.Tensor, device: str, threads: int | None = None, runs: int = 30,
    seconds: float = 10.0,
) -> InferenceCost:  # fmt: skip
    """``model`` (a torchvision detector, put in eval mode) on one image at batch 1, its own resize
    to the test size and its postprocessing included; torch's thread count pinned to ``threads``
    (the current count when None) while measuring, then restored."""
    previous = torch.get_num_threads()
    threads = threads or previous
    model = model.eval().to(device)
    batch = [image.to(device)]
    torch.set_num_threads(threads)
    try:
        flops = count_flops(lambda: model(batch))
        times = time_runs(lambda: model(batch), device, runs, seconds)
    finally:
        torch.set_num_threads(previous)
    q1, median, q3 = np.percentile(times, [25, 50, 75])
    return InferenceCost(parameter_count(model), flops, float(median), (float(q1), float(q3)), len(times), threads,
                         device_name(device))  # fmt: skip


def device_name(device: str) -> str:
    """``cuda: NVIDIA H100 ...`` or ``cpu: vm (AMD EPYC; avx2, ...)``: what a latency was measured on."""
    if device.startswith("cuda"):
        return f"{device}: {torch.cuda.get_device_name(torch.device(device))}"
    from transferdet.provenance import machine

    return f"cpu: {machine()}"
