"""The default compute device, decided in one place."""

from __future__ import annotations


def default_device(device: str | None = None) -> str:
    """``device`` as given (``cpu``, ``cuda``, ``cuda:1``, ...); ``None`` or ``auto``: ``cuda`` when a
    GPU is visible to this process, else ``cpu``. A bench job decides ``auto`` on the worker that
    runs it, not on the driver."""
    if device and device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
