"""A detector's inference cost (models/inference_cost.py): FLOPs by FlopCounterMode's convention
(a multiply-add counts 2), latency as a median and IQR over timed runs after warm-up, the thread
count pinned while measuring and restored, parameters counted."""

from __future__ import annotations

import time

import torch

from transferdet.models.inference_cost import count_flops, detector_cost, time_runs


def test_a_convolution_costs_two_flops_per_multiply_add():
    conv = torch.nn.Conv2d(3, 8, 3, padding=1, bias=False)
    x = torch.zeros(1, 3, 16, 16)
    assert count_flops(lambda: conv(x)) == 2 * 8 * 3 * 3 * 3 * 16 * 16


def test_timed_runs_stop_at_the_count_or_the_time_and_measure_the_call():
    calls = []

    def run() -> None:
        calls.append(1)
        time.sleep(0.004)

    times = time_runs(run, "cpu", runs=6, seconds=10.0, warmup=2)
    assert len(times) == 6 and len(calls) == 8  # warm-up calls are not timed
    assert all(4.0 <= t < 40.0 for t in times)
    assert 3 <= len(time_runs(run, "cpu", runs=1000, seconds=0.02, warmup=0)) < 20  # the time bound


class _Counter(torch.nn.Module):
    """A stand-in detector: one convolution; records the threads it ran with."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 1)
        self.threads: set[int] = set()

    def forward(self, images: list[torch.Tensor]) -> list[dict]:
        self.threads.add(torch.get_num_threads())
        return [{"boxes": self.conv(images[0][None]).flatten()[:4]}]


def test_the_thread_count_is_pinned_while_measuring_and_restored():
    model, before = _Counter(), torch.get_num_threads()
    cost = detector_cost(model, torch.zeros(3, 8, 8), "cpu", threads=1, runs=4, seconds=5.0)
    assert model.threads == {1} and torch.get_num_threads() == before
    assert cost.threads == 1 and cost.runs == 4 and cost.params == 3 * 4 + 4
    assert cost.flops == 2 * 3 * 4 * 8 * 8 and cost.device.startswith("cpu: ")
    assert cost.latency_iqr_ms[0] <= cost.latency_ms <= cost.latency_iqr_ms[1]
