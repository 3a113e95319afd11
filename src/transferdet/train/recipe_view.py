"""What a recipe does once made concrete: the effective schedule after scaling to the batch and the
number of processes (``transferdet recipe show``)."""

from __future__ import annotations

from typing import Any

from transferdet.models.norms import norm_for_processes
from transferdet.train.recipes import Recipe
from transferdet.train.schedule import learning_rate_factor, step_iterations, total_iterations


def effective_schedule(recipe: Recipe, world: int = 1, images: int | None = None) -> dict[str, Any]:
    """The schedule ``recipe`` runs with ``world`` processes on ``images`` training images (needed
    only for a recipe given in epochs; without it, its length in iterations is left open)."""
    batch = recipe.batch_size * world
    lr = recipe.lr * batch / recipe.base_batch
    total = total_iterations(recipe, images, world) if recipe.iterations or images else None
    view: dict[str, Any] = {
        "recipe": recipe.name,
        "detector": recipe.detector or "any (give --detector)",
        "optimizer": f"{recipe.optimizer}, lr {recipe.lr:g} at batch {recipe.base_batch} -> {lr:g} at batch {batch}",
        "weight_decay": recipe.weight_decay
        if recipe.decay_norm_and_position
        else f"{recipe.weight_decay:g} (none on norms and position embeddings)",
        "layer_decay": f"{recipe.layer_decay:g} per block of a plain ViT (ViTDet)" if recipe.layer_decay else "none",
        "length": _length(recipe, total, images, batch),
        "warmup": f"{recipe.warmup_iterations} iterations, linear from x{recipe.warmup_factor:g}"
        if recipe.warmup_iterations
        else "none",
        "schedule": _lr_steps(recipe, lr, total),
        "frozen": recipe.frozen_parts(),
        "norm": f"{_norm(recipe.norm, world)} in the backbone, {_norm(recipe.fpn_norm, world)} in the FPN",
        "anchors": "the detector's standard anchors" if recipe.anchors == "default" else "fitted to the training boxes",
        "train_sizes": f"short side {_sizes(recipe.min_size)}, long side at most {recipe.max_size}",
        "test_size": recipe.test_size or recipe.min_size[-1],
        "flip": recipe.flip,
        "precision": recipe.precision,
    }
    return view


def _norm(policy: str | None, world: int) -> str:
    """A recipe's norm as ``world`` processes run it (SyncBN is BN in one process)."""
    if policy is None:
        return "none"
    runs = norm_for_processes(policy, world > 1)
    return policy if runs == policy else f"{policy} ({runs} in one process)"


def _sizes(sizes: list[int]) -> str:
    return str(sizes[0]) if len(sizes) == 1 else f"one of {', '.join(map(str, sizes))}"


def _length(recipe: Recipe, total: int | None, images: int | None, batch: int) -> str:
    if recipe.iterations is not None:
        return f"{recipe.iterations} iterations of {batch} images"
    if total is None:
        return f"{recipe.epochs:g} epochs of the training images at {batch} per iteration (give --images N to count)"
    return f"{recipe.epochs:g} epochs of {images} images = {total} iterations of {batch} images"


def _lr_steps(recipe: Recipe, lr: float, total: int | None) -> str:
    if recipe.schedule == "plateau":
        return f"lr {lr:g}, divided by 10 when a validation split's AP stops improving"
    if recipe.schedule == "constant":
        return f"lr {lr:g} throughout"
    if total is None:
        return f"{recipe.schedule} (iterations depend on the dataset's size)"
    if recipe.schedule == "cosine":
        return f"lr {lr:g} decaying along a half cosine to 0 at iteration {total}"
    points = [0, *step_iterations(recipe, total)]
    return ", ".join(f"lr {lr * learning_rate_factor(recipe, p, total) if p else lr:g} from {p}" for p in points)
