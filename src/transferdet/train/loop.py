"""The training loop: one optimisation step per batch, logged, evaluated and checkpointed on the
recipe's schedule, stopped with a clear error on a non-finite loss."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TextIO

import torch

from transferdet import precision
from transferdet.data.dataset import DetectionDataset
from transferdet.errors import TransferdetError
from transferdet.runs import RunDir
from transferdet.train import distributed
from transferdet.train.assemble import body
from transferdet.train.evaluation import evaluate
from transferdet.train.recipes import Recipe
from transferdet.train.schedule import Plateau, learning_rate_factor, second_step_start
from transferdet.train.state import random_state, restore_random_state, training_state

IterationCallback = Callable[[int, int, dict[str, float]], None]


@dataclass
class Session:
    """Everything one training run's loop works with."""

    model: torch.nn.Module
    net: torch.nn.Module  # the model, or its DDP wrapper
    optimizer: torch.optim.Optimizer
    recipe: Recipe
    device: str
    group: distributed.Group
    run: RunDir
    dataset: DetectionDataset
    test_split: str | None
    total: int
    plateau: Plateau
    resumed: bool = False
    distiller: Any = None
    val_split: str | None = None  # evaluated during training (never test_split, which is reported)
    stop: int = 0  # where this call stops (a rung of select's race), else total
    eval_test_at: tuple[int, ...] = ()  # iterations after which the test split is evaluated (a curve)
    base_lrs: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.stop = self.stop or self.total
        self.base_lrs = [g["lr"] for g in self.optimizer.param_groups]
        self.precision = precision.training_precision(self.recipe.precision, self.device)
        self.scaler = torch.amp.GradScaler(
            torch.device(self.device).type, enabled=precision.needs_grad_scaler(self.precision)
        )


def _set_learning_rate(session: Session, iteration: int) -> None:
    phase = 1.0
    switch = second_step_start(session.recipe, session.total)
    if switch is not None and iteration >= switch:
        phase = session.recipe.second_step_lr_factor
        body(session.model).requires_grad_(True)
    factor = learning_rate_factor(session.recipe, iteration, session.total) * session.plateau.factor * phase
    for param_group, base in zip(session.optimizer.param_groups, session.base_lrs, strict=True):
        param_group["lr"] = base * factor


def _step(session: Session, iteration: int, images: list, targets: list, last_good: int | None) -> dict[str, float]:
    """One optimisation step; returns the scalars to log."""
    _set_learning_rate(session, iteration)
    session.model.train()
    images = [image.to(session.device) for image in images]
    targets = [{k: (v.to(session.device) if torch.is_tensor(v) else v) for k, v in t.items()} for t in targets]
    if session.distiller is not None:
        session.distiller.annotate(images, targets)
    with precision.autocast(session.precision, session.device):
        losses = session.net(images, targets)
    losses = {k: v.float() for k, v in losses.items()}
    loss = sum(losses.values())
    if distributed.any_true(session.group, not torch.isfinite(loss)):
        values = ", ".join(f"{k} {v.item():.4g}" for k, v in losses.items())
        kept = (
            f"the last good checkpoint is {session.run.checkpoint_file}"
            if last_good is not None or session.resumed
            else "no checkpoint was written"
        )
        raise TransferdetError(f"loss is {loss.item()} at iteration {iteration} ({values}); stopped, {kept}")
    optimizer, scaler = session.optimizer, session.scaler
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if session.recipe.grad_clip:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(session.model.parameters(), session.recipe.grad_clip)
    scaler.step(optimizer)
    scaler.update()
    return {"loss": loss.item(), **{k: v.item() for k, v in losses.items()}, "lr": optimizer.param_groups[0]["lr"]}


def _evaluate_midway(session: Session, iteration: int, log: TextIO) -> None:
    metrics = evaluate(session.model, session.dataset, session.val_split, session.device, session.group)
    scores = {k: metrics[k] for k in ("AP", "AP50")}
    log.write(json.dumps({"iteration": iteration, "eval": scores, "split": session.val_split}) + "\n")
    if session.recipe.schedule == "plateau":
        session.plateau.step(metrics["AP"] or 0.0)


def _evaluate_test(session: Session, iteration: int, log: TextIO) -> None:
    """The test split's AP at ``iteration``, for a learning curve; the random states are restored
    after it, so that training goes on exactly as without it."""
    saved = random_state()
    metrics = evaluate(session.model, session.dataset, session.test_split, session.device, session.group)
    restore_random_state(saved)
    scores = {k: metrics[k] for k in ("AP", "AP50")}
    log.write(json.dumps({"iteration": iteration, "test_eval": scores, "split": session.test_split}) + "\n")


def _checkpoint(session: Session, iteration: int, log: TextIO) -> None:
    log.flush()
    states = distributed.gather(session.group, random_state())
    if session.group.main:
        session.run.save_checkpoint(
            training_state(session.model, session.optimizer, iteration, session.plateau, states, session.scaler)
        )


def run_loop(
    session: Session,
    batches: Iterable[tuple[list, list]],
    start: int,
    log: TextIO,
    board: Any = None,
    on_iteration: IterationCallback | None = None,
) -> None:
    """Train from iteration ``start`` over ``batches`` (one per remaining iteration)."""
    recipe, iteration, last_good = session.recipe, start, None
    for images, targets in batches:
        scalars = _step(session, iteration, images, targets, last_good)
        iteration += 1
        log.write(json.dumps({"iteration": iteration, "time": time.time(), **scalars}) + "\n")
        if board is not None:
            for key, value in scalars.items():
                board.add_scalar(f"train/{key}", value, iteration)
        if on_iteration is not None:
            on_iteration(iteration, session.total, scalars)
        midway = recipe.eval_every and iteration % recipe.eval_every == 0 and iteration < session.total
        if midway and session.val_split is not None:
            _evaluate_midway(session, iteration, log)
        if iteration in session.eval_test_at and iteration < session.total and session.test_split is not None:
            _evaluate_test(session, iteration, log)
        if iteration % recipe.checkpoint_every == 0 or iteration in (session.stop, session.total):
            _checkpoint(session, iteration, log)
            last_good = iteration
