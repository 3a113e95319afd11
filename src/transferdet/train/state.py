"""What a checkpoint holds beyond the weights: optimizer, schedule, iteration, and the random
states of every process, so that a resumed run continues exactly where it stopped."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

from transferdet.train.schedule import Plateau


def random_state() -> dict[str, Any]:
    """This process's random states as tensors and plain types (NumPy's key as an int64 tensor),
    so that a checkpoint loads with ``weights_only=True``."""
    name, keys, position, has_gauss, cached = np.random.get_state()
    numpy_state = [name, torch.from_numpy(keys.astype(np.int64)), int(position), int(has_gauss), float(cached)]
    return {"torch": torch.get_rng_state(), "numpy": numpy_state, "python": random.getstate()}


def restore_random_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached))
    random.setstate(state["python"])


def training_state(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    iteration: int,
    plateau: Plateau,
    states: list[Any],
    scaler: torch.amp.GradScaler | None = None,
) -> dict[str, Any]:
    """The checkpoint's content; ``states`` are the random states of all processes, by rank; an
    fp16 run's gradient scaler keeps its current scale (an empty dict when disabled)."""
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "iteration": iteration,
        "plateau": plateau.as_dict(),
        "random": states,
        "scaler": scaler.state_dict() if scaler is not None else {},
    }


def restore_training_state(
    state: dict[str, Any],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    rank: int,
    scaler: torch.amp.GradScaler | None = None,
) -> tuple[int, Plateau]:
    """Load a checkpoint's content into ``model``, ``optimizer`` (and ``scaler``) and this
    process's random state; returns the iteration and plateau state to continue from."""
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    restore_random_state(state["random"][rank])
    return state["iteration"], Plateau(**state["plateau"])
