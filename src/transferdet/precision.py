"""Reduced precision for forward passes, decided in one place: ``fp32``, ``bf16``, ``fp16`` or
``auto`` (what the device does well: bf16 on a GPU that supports it, else fp16; bf16 on a CPU
with native bf16 units, AVX512-BF16 or AMX; fp32 on other CPUs, where bf16 is emulated and slower).

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
    """Whether this CPU computes bf16 in hardware (AVX512-BF16 or AMX tiles)."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


def resolve(precision: str, device: str | torch.device) -> str:
    """``precision`` with ``auto`` replaced by what ``device`` does well (fp32, bf16 or fp16)."""
    if precision not in PRECISIONS:
        raise TransferdetError(f"--precision {precision!r}: choose from {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    if str(device).startswith("cuda"):
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_has_native_bf16() else "fp32"


@contextlib.contextmanager
def autocast(precision: str, device: str | torch.device) -> Iterator[None]:
    """Autocast to the resolved ``precision`` on ``device`` (nothing for fp32)."""
    resolved = resolve(precision, device)
    if resolved == "fp32":
        yield
        return
    with torch.autocast(torch.device(device).type, dtype=_TYPES[resolved]):
        yield
