"""Reduced precision for forward passes, decided in one place: ``fp32``, ``bf16``, ``fp16`` or
``auto`` (what the device does well: bf16 on a GPU that supports it, else fp16; bf16 on a CPU
with AMX tiles; fp32 on other CPUs). AVX512-BF16 alone is not enough: its dot-product instruction
has the throughput of a float32 FMA, and on such a CPU (2 cores, Intel Xeon, AVX512-BF16 without
AMX) bf16 autocast ran a ResNet-18 forward pass at 0.7x, a MobileNetV2 one at 1.6x and an FCOS
training step at 0.73x the speed of float32. With AMX (2 cores, Intel Xeon): ranking's ResNet-18
extraction 2.2-2.5x, an FCOS ResNet-18 training step 2.2x, with the same AP over 3 trials
(benchmarks/RESULTS.md). Without AVX512-BF16, bf16 is emulated and 6-9x slower.

Reduced precision is autocast (Micikevicius et al., "Mixed Precision Training", ICLR 2018: the
weights stay float32, matrix products and convolutions run in the low type).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from transferdet.errors import TransferdetError

PRECISIONS = ("fp32", "bf16", "fp16", "auto")
_TYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware at all (AVX512-BF16 or AMX tiles)."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


def cpu_bf16_is_faster() -> bool:
    """Whether bf16 runs convolutions and matrix products faster than float32 here: AMX tiles."""
    return bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())


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
    ``auto`` stays fp32 on CPUs, AMX ones included, where bf16 is 2.2x faster with the same AP:
    oneDNN's bf16 weight gradient of a 3 x 3 convolution on a 1 x 1 map is wrong on these CPUs,
    and besides FCOS/RetinaNet's P6/P7 and SSD's extra maps (kept in float32) such maps occur in
    a backbone's deep stages on small images. bf16 training on a CPU is a choice the user makes
    (``--set precision=bf16``)."""
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
