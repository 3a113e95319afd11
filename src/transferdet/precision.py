"""Reduced precision for forward passes, decided in one place: ``fp32``, ``bf16``, ``fp16`` or
``auto`` (what the device does well: bf16 on a GPU that supports it, else fp16; on a CPU, bf16
where it is measurably faster than float32, else fp32).

On CPUs the instruction set does not settle it. With AMX tiles bf16 is fast (2 cores, Intel Xeon:
ranking's ResNet-18 extraction 2.2-2.5x, an FCOS ResNet-18 training step 2.2x, the same AP over 3
trials). With AVX512-BF16 alone it depends on the chip: on an Intel Xeon, a ResNet-18 forward pass
ran at 0.7x, a MobileNetV2 one at 1.6x and an FCOS training step at 0.73x the speed of float32; on
an AMD EPYC, extraction at 1.6-1.9x (ResNet-18, MobileNetV2, EfficientNet-Lite0) and the step at 1.78x
(benchmarks/RESULTS.md). So there a probe measures it: one 3 x 3 convolution timed both ways, once
per process (:func:`bf16_probe_speedup`). Without either, bf16 is emulated and 6-9x slower.

Reduced precision is autocast (Micikevicius et al., "Mixed Precision Training", ICLR 2018: the
weights stay float32, matrix products and convolutions run in the low type).
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Iterator

import torch

from transferdet.errors import TransferdetError

PRECISIONS = ("fp32", "bf16", "fp16", "auto")
_TYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
PROBE_SPEEDUP = 1.3  # how much faster bf16 must run the probe convolution for auto to pick it on a CPU


def _cpu_reports(check: str) -> bool:
    """What ``torch.cpu``'s capability check ``check`` says (False where this torch lacks it)."""
    return bool(getattr(torch.cpu, check, lambda: False)())


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware at all (AVX512-BF16 or AMX tiles)."""
    return _cpu_reports("_is_avx512_bf16_supported") or _cpu_reports("_is_amx_tile_supported")


@functools.cache
def bf16_probe_speedup() -> float:
    """float32 time over bf16-autocast time of one inference 3 x 3 convolution (64 channels, 8
    maps of 56 x 56, channels_last), best of 3 each after a warm-up call: about 0.1 s, measured
    once per process (a fact of the hardware). Its tensors come from a generator of its own, so
    the global random state a seed fixed is not touched. Measured: 1.8-1.95 on an AMD EPYC whose
    ResNet-18 extraction runs 1.7x faster in bf16 (``benchmarks/bench_rank.py`` prints it)."""
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(64, 64, 3, 3, generator=generator).contiguous(memory_format=torch.channels_last)
    maps = torch.randn(8, 64, 56, 56, generator=generator).contiguous(memory_format=torch.channels_last)

    def best_time(low: bool) -> float:
        times = []
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=low):
            for _ in range(4):
                start = time.perf_counter()
                torch.nn.functional.conv2d(maps, weight, padding=1)
                times.append(time.perf_counter() - start)
        return min(times[1:])

    return best_time(False) / best_time(True)


def cpu_bf16_is_faster() -> bool:
    """Whether bf16 runs convolutions faster than float32 here: with AMX tiles yes; with
    AVX512-BF16 alone when the probe convolution runs at least :data:`PROBE_SPEEDUP` times faster;
    otherwise no."""
    if _cpu_reports("_is_amx_tile_supported"):
        return True
    return _cpu_reports("_is_avx512_bf16_supported") and bf16_probe_speedup() >= PROBE_SPEEDUP


def resolve(precision: str, device: str | torch.device) -> str:
    """``precision`` with ``auto`` replaced by what ``device`` does well (fp32, bf16 or fp16)."""
    if precision not in PRECISIONS:
        raise TransferdetError(f"--precision {precision!r}: choose from {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    if str(device).startswith("cuda"):
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_bf16_is_faster() else "fp32"


def training_precision(precision: str, device: str | torch.device) -> str:
    """What a training step runs in: ``precision`` resolved as for a forward pass, except that
    ``auto`` stays fp32 on CPUs, even where bf16 is 1.8-2.2x faster with the same AP: oneDNN's
    bf16 weight gradient of a 3 x 3 convolution on a 1 x 1 map is wrong on these CPUs (Intel with
    and without AMX, AMD EPYC), and besides FCOS/RetinaNet's P6/P7 and SSD's extra maps (kept in
    float32) such maps occur in a backbone's deep stages on small images. bf16 training on a CPU
    is a choice the user makes (``--set precision=bf16``)."""
    if precision == "auto" and not str(device).startswith("cuda"):
        return "fp32"
    return resolve(precision, device)


def needs_grad_scaler(resolved: str) -> bool:
    """fp16's narrow exponent range underflows small gradients unless the loss is scaled first."""
    return resolved == "fp16"


@contextlib.contextmanager
def autocast(precision: str, device: str | torch.device) -> Iterator[None]:
    """Autocast to the resolved ``precision`` on ``device`` (nothing for fp32)."""
    resolved = resolve(precision, device)
    if resolved == "fp32":
        yield
        return
    with torch.autocast(torch.device(device).type, dtype=_TYPES[resolved]):
        yield


@contextlib.contextmanager
def in_float32(tensor: torch.Tensor) -> Iterator[torch.Tensor]:
    """``tensor`` in float32 with autocast off on its device, whatever precision runs around it:
    for the layers whose low-precision gradients are wrong (oneDNN's bf16 weight gradient of a
    3 x 3 convolution on a 1 x 1 map: FCOS/RetinaNet's P6/P7, SSD's extra maps; see
    ``models/detector_parts.py``)."""
    with torch.autocast(tensor.device.type, enabled=False):
        yield tensor.float()
