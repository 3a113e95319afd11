"""Which code and which packages produced a result: the git commit of the source tree this package
was imported from (with ``+dirty`` when its ``src/`` has uncommitted changes), else the package
version; the installed distributions, as ``pip freeze`` would list them; and the machine: its
name, CPU model and the vector instructions that decide which kernels torch runs (AVX-512 and AMX
kernels round differently from AVX2 ones, so a seeded run agrees bit for bit only on a like CPU).
A benchmark store records all three (the code version and the machine per job, the packages per
code version), so that one store never mixes code versions or machines silently."""

from __future__ import annotations

import functools
import importlib.metadata
import socket
import subprocess
from pathlib import Path

from transferdet import __version__

PACKAGE_DIR = Path(__file__).resolve().parent


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(PACKAGE_DIR), *args], capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


@functools.cache
def code_version() -> str:
    """``<commit>`` or ``<commit>+dirty`` for a checkout, ``transferdet <version>`` for an install."""
    commit = _git("rev-parse", "HEAD")
    if not commit:
        return f"transferdet {__version__}"
    dirty = _git("status", "--porcelain", "--untracked-files=no", "--", str(PACKAGE_DIR))
    return commit + ("+dirty" if dirty else "")


def installed_packages() -> list[str]:
    """``name==version`` of every installed distribution, sorted (what ``pip freeze`` lists)."""
    found = {(d.metadata["Name"] or "?", d.version) for d in importlib.metadata.distributions()}
    return sorted(f"{name}=={version}" for name, version in found)


# the instruction sets torch's CPU kernels dispatch on (ATen's CPU capability, oneDNN's ISA)
VECTOR_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_fp16", "asimd", "sve")


def machine(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """``<host name> (<CPU model>; <vector extensions>)``: where a job ran, as far as its numbers
    depend on it. Without /proc/cpuinfo (not Linux), the host name and ``platform.processor()``."""
    import platform

    model, flags = platform.processor() or platform.machine(), set()
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                model = value.strip()
            elif key.strip() in ("flags", "Features"):
                flags |= set(value.split())
            if flags and not line.strip():
                break  # the first processor's block is enough
    vector = ", ".join(f for f in VECTOR_FLAGS if f in flags) or "no listed vector extensions"
    return f"{socket.gethostname()} ({model}; {vector})"
