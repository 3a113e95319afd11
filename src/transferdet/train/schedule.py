"""A recipe's learning-rate schedule: length, warmup, multistep/cosine/plateau, the two-step switch.

Linear warmup from ``warmup_factor`` (Goyal et al., "Accurate, Large Minibatch SGD", 2017), then
steps (decay by ``gamma`` at each), half-cosine, or ReduceLROnPlateau on AP (the TMOD paper's
protocol); ``tmod_two_step`` unfreezes the body half-way at a lower learning rate.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from transferdet.train.recipes import Recipe


def total_iterations(recipe: Recipe, train_images: int, world: int = 1) -> int:
    """The run's length in iterations: as given, or ``epochs`` over the training images, each
    iteration consuming ``batch_size`` images in each of the ``world`` processes."""
    if recipe.iterations is not None:
        return recipe.iterations
    return max(1, math.ceil(recipe.epochs * train_images / (recipe.batch_size * world)))


def step_iterations(recipe: Recipe, total: int) -> list[int]:
    """The first iteration at each decay of a multistep schedule (steps are fractions of the run, or
    iterations)."""
    return [math.ceil(s * total) if s <= 1 else math.ceil(s) for s in recipe.steps]


def learning_rate_factor(recipe: Recipe, iteration: int, total: int) -> float:
    """Warmup times the schedule, as a factor of the (batch-scaled) base learning rate."""
    warm = 1.0
    if iteration < recipe.warmup_iterations:
        alpha = iteration / recipe.warmup_iterations
        warm = recipe.warmup_factor * (1 - alpha) + alpha
    if recipe.schedule == "multistep":
        return warm * recipe.gamma ** sum(iteration >= s for s in step_iterations(recipe, total))
    if recipe.schedule == "cosine":
        return warm * 0.5 * (1 + math.cos(math.pi * iteration / total))
    return warm  # constant, or plateau (whose reductions are applied on evaluation)


def second_step_start(recipe: Recipe, total: int) -> int | None:
    """The iteration where a two-step recipe unfreezes the body (half-way), else None."""
    return total // 2 if recipe.second_step_lr_factor else None


@dataclass
class Plateau:
    """ReduceLROnPlateau on AP: divide the learning rate by 10 after ``patience`` evaluations
    without gain. Kept in the checkpoint as a dict (``as_dict``/``Plateau(**d)``)."""

    best: float = -1.0
    bad: int = 0
    factor: float = 1.0

    def step(self, ap: float, patience: int = 2, reduction: float = 0.1) -> None:
        if ap > self.best:
            self.best, self.bad = ap, 0
            return
        self.bad += 1
        if self.bad > patience:
            self.factor *= reduction
            self.bad = 0

    def as_dict(self) -> dict[str, float]:
        return asdict(self)
