"""The training loop: seeded, checkpointed atomically, resumable exactly, stopped on a bad loss.

A run writes into its output folder ``recipe.json`` (the validated recipe and job), ``log.jsonl``
(one line of scalars per iteration and per evaluation), ``checkpoint.pt`` (model, optimizer,
schedule, random states, iteration; replaced atomically every ``checkpoint_every`` iterations and
at the end), ``metrics.json`` (the final COCO evaluation, fractions in [0, 1]) and
``summary.png`` (loss curves, learning rate, AP per evaluation).
``resume=True`` continues from ``checkpoint.pt``: with the same seed, the final weights and
metrics equal those of an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision.transforms import v2

from transferdet.atomic import atomic_write_bytes
from transferdet.data.dataset import DetectionDataset, ImageRecord
from transferdet.data.formats.base import ReadOptions
from transferdet.data.loader import load_dataset
from transferdet.data.transforms import TorchDetectionDataset, collate_detection
from transferdet.errors import TransferdetError
from transferdet.evaluate.coco_metrics import Prediction, coco_evaluate
from transferdet.models.anchors import auto_anchors, resized_box_shapes, ssd_scales
from transferdet.models.backbones import build_backbone
from transferdet.models.detectors import DetectorConfig, build_detector
from transferdet.train import distributed
from transferdet.train.distiller import Distiller, DistillSettings, Teacher
from transferdet.train.recipes import Recipe
from transferdet.train.sampling import SeededAugmentation, StreamBatchSampler

CHECKPOINT = "checkpoint.pt"
TEST_SPLITS = ("test", "val", "valid", "validation")


@dataclass
class TrainJob:
    data: Path
    backbone: str
    detector: str
    recipe: Recipe
    out: Path
    seed: int = 0
    device: str = "cuda" if torch.cuda.is_available() else "cpu"
    format: str = "auto"
    train_split: str | None = None
    test_split: str | None = None
    options: ReadOptions = field(default_factory=ReadOptions)
    distill: DistillSettings | None = None  # classifier-to-detector distillation from a teacher


def training_transforms(flip: float) -> v2.Compose:
    """Flip and convert; resizing is the detector's own (its min_size/max_size)."""
    steps = [v2.ToImage()]
    if flip > 0:
        steps.append(v2.RandomHorizontalFlip(flip))
    steps += [v2.ToDtype(torch.float32, scale=True), v2.SanitizeBoundingBoxes(min_size=1.0)]
    return v2.Compose(steps)


def _splits(dataset: DetectionDataset, job: TrainJob) -> tuple[str, str | None]:
    train = job.train_split or ("train" if "train" in dataset.splits else next(iter(dataset.splits)))
    test = job.test_split or next((s for s in TEST_SPLITS if s in dataset.splits and s != train), None)
    for name in (train, test):
        if name is not None and name not in dataset.splits and "+" not in name:
            raise TransferdetError(f"no split {name!r} (splits: {', '.join(dataset.splits)})")
    return train, test


def aspect_groups(records: list[ImageRecord]) -> np.ndarray:
    """0 for landscape (width >= height), 1 for portrait images."""
    return np.array([int(r.height > r.width) for r in records])


def total_iterations(recipe: Recipe, train_images: int) -> int:
    if recipe.iterations is not None:
        return recipe.iterations
    return max(1, math.ceil(recipe.epochs * train_images / recipe.batch_size))


def learning_rate_factor(recipe: Recipe, iteration: int, total: int) -> float:
    """Warmup times the schedule, as a factor of the (batch-scaled) base learning rate."""
    warm = 1.0
    if iteration < recipe.warmup_iterations:
        alpha = iteration / recipe.warmup_iterations
        warm = recipe.warmup_factor * (1 - alpha) + alpha
    if recipe.schedule == "multistep":
        steps = [s * total if s <= 1 else s for s in recipe.steps]
        return warm * recipe.gamma ** sum(iteration >= s for s in steps)
    if recipe.schedule == "cosine":
        return warm * 0.5 * (1 + math.cos(math.pi * iteration / total))
    return warm  # constant, or plateau (whose reductions are applied on evaluation)


def _body(model: torch.nn.Module) -> torch.nn.Module:
    return model.backbone.body


def build_model(job: TrainJob, dataset: DetectionDataset, train_records: list[ImageRecord]) -> torch.nn.Module:
    recipe = job.recipe
    torch.manual_seed(job.seed)
    size = max(recipe.min_size)
    shapes = resized_box_shapes(train_records, size, recipe.max_size)
    anchors = auto_anchors(shapes) if recipe.anchors == "auto" else None
    config = DetectorConfig(
        job.detector,
        len(dataset.classes),
        min_size=tuple(recipe.min_size),
        max_size=recipe.max_size,
        fpn_channels=recipe.fpn_channels,
        norm=recipe.norm if recipe.norm != "syncbn" or torch.distributed.is_initialized() else "bn",
        freeze_at=recipe.freeze_at,
        anchors=anchors,
        ssd_scales=ssd_scales(shapes, size, 5) if recipe.anchors == "auto" else None,
        extra=(
            {"box_batch_size_per_image": recipe.rois_per_image}
            if recipe.rois_per_image and "rcnn" in job.detector
            else {}
        ),
    )
    model = build_detector(build_backbone(job.backbone), config)
    model.detector_config = config
    if recipe.freeze_body:
        for parameter in _body(model).parameters():
            parameter.requires_grad_(False)
    return model


def detector_record(model: torch.nn.Module, classes: list[str]) -> dict[str, Any]:
    """What :func:`load_trained` needs to rebuild the detector without the training data."""
    config = model.detector_config
    anchors = (
        None if config.anchors is None else {"sizes": list(config.anchors.sizes), "ratios": list(config.anchors.ratios)}
    )
    return {
        "kind": config.kind,
        "classes": classes,
        "min_size": list(config.min_size) if not isinstance(config.min_size, int) else [config.min_size],
        "max_size": config.max_size,
        "fpn_channels": config.fpn_channels,
        "norm": config.norm,
        "anchors": anchors,
        "ssd_scales": config.ssd_scales,
    }


def load_trained(run: Path, device: str = "cpu") -> tuple[torch.nn.Module, list[str]]:
    """The detector of a finished (or checkpointed) run folder, in eval mode, and its classes."""
    from transferdet.models.anchors import AnchorSpec
    from transferdet.models.specs import parse_spec

    recipe_file, checkpoint = run / "recipe.json", run / CHECKPOINT
    for path in (recipe_file, checkpoint):
        if not path.is_file():
            raise TransferdetError(f"{path}: missing (is {run} a transferdet training run?)")
    content = json.loads(recipe_file.read_text(encoding="utf-8"))
    record, job = content["detector"], content["job"]
    anchors = (
        AnchorSpec(tuple(record["anchors"]["sizes"]), tuple(record["anchors"]["ratios"])) if record["anchors"] else None
    )
    config = DetectorConfig(
        record["kind"],
        len(record["classes"]),
        min_size=tuple(record["min_size"]),
        max_size=record["max_size"],
        fpn_channels=record["fpn_channels"],
        norm=record["norm"],
        anchors=anchors,
        ssd_scales=record["ssd_scales"],
    )
    architecture = parse_spec(job["backbone"].split("@")[0])  # weights come from the checkpoint
    model = build_detector(build_backbone(architecture), config)
    state = torch.load(checkpoint, map_location=device, weights_only=False)
    model.load_state_dict(state["model"])
    return model.to(device).eval(), record["classes"]


def _optimizer(recipe: Recipe, model: torch.nn.Module, world: int) -> torch.optim.Optimizer:
    lr = recipe.lr * recipe.batch_size * world / recipe.base_batch  # linear scaling
    parameters = list(model.parameters())
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay)
    kind = torch.optim.AdamW if recipe.optimizer == "adamw" else torch.optim.Adam
    return kind(parameters, lr=lr, weight_decay=recipe.weight_decay)


def _random_state() -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def _restore_random_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


@torch.no_grad()
def predict(model: torch.nn.Module, records: list[ImageRecord], device: str, batch_size: int = 4) -> list[Prediction]:
    """The model's detections on ``records``, in their pixels and the dataset's label ids."""
    model.eval()
    data = TorchDetectionDataset(records, training_transforms(0.0))
    out = []
    for start in range(0, len(records), batch_size):
        images = [data[i][0].to(device) for i in range(start, min(start + batch_size, len(records)))]
        for result in model(images):
            out.append(
                Prediction(
                    result["boxes"].double().cpu().numpy(),
                    result["scores"].double().cpu().numpy(),
                    result["labels"].cpu().numpy() - model.label_offset,
                )
            )
    return out


def evaluate(
    model: torch.nn.Module, dataset: DetectionDataset, split: str, device: str, group: distributed.Group | None = None
) -> dict[str, Any]:
    """COCO metrics on ``split``; under DDP each process predicts every world-th image and rank 0's
    result (computed on all predictions) is shared."""
    group = group or distributed.Group()
    records = dataset.records(split)
    mine = list(range(group.rank, len(records), group.world))
    shards = distributed.gather(group, (mine, predict(model, [records[i] for i in mine], device)))
    metrics = None
    if group.main:
        predictions: list[Prediction | None] = [None] * len(records)
        for indices, predicted in shards:
            for i, prediction in zip(indices, predicted, strict=True):
                predictions[i] = prediction
        metrics = coco_evaluate(records, dataset.classes, predictions)
    return distributed.broadcast(group, metrics)


def weights_checksum(model: torch.nn.Module) -> float:
    """Sum of all parameters: equal on every DDP process after each step. (BatchNorm running
    statistics are buffers, re-broadcast from rank 0 at each forward; rank 0's are the ones saved.)"""
    return float(sum(p.detach().double().sum() for p in model.parameters()))


def train(
    job: TrainJob,
    resume: bool = False,
    on_iteration: Callable[[int, int, dict[str, float]], None] | None = None,
) -> dict[str, Any]:
    """Run (or resume) ``job``; returns the final metrics. Under ``torchrun`` every process runs this
    and rank 0 alone writes files."""
    group, device = distributed.setup(job.device)
    try:
        with flushed_denormals():
            return _train(replace(job, device=device), group, resume, on_iteration)
    finally:
        distributed.teardown(group)


@contextlib.contextmanager
def flushed_denormals() -> Any:
    """CPU arithmetic treats denormal floats (below ~1e-38) as zero while inside. Weights and
    gradients that decay into that range made a Faster R-CNN training step 3.3x slower on x86
    (3.8 s against 1.2 s, the same step timed both ways); a GPU is unaffected. Restores the
    default (off) on the way out."""
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def _train(
    job: TrainJob,
    group: distributed.Group,
    resume: bool,
    on_iteration: Callable[[int, int, dict[str, float]], None] | None,
) -> dict[str, Any]:
    recipe, out = job.recipe, job.out
    dataset = load_dataset(job.data, job.format, job.options, seed=job.seed)
    train_split, test_split = _splits(dataset, job)
    train_records = [r for r in dataset.records(train_split) if r.num_boxes > 0]
    if not train_records:
        raise TransferdetError(f"split {train_split!r} has no image with boxes to train on")
    checkpoint_path = out / CHECKPOINT
    if resume and not checkpoint_path.is_file():
        raise TransferdetError(f"{checkpoint_path}: no checkpoint to resume from")
    if not resume and checkpoint_path.exists():
        raise TransferdetError(f"{out}: holds a run already (pass --resume to continue it, or another --out)")
    if resume and (out / "recipe.json").is_file():
        recorded = json.loads((out / "recipe.json").read_text(encoding="utf-8"))["job"].get("distill")
        if recorded != _distill_record(job):
            raise TransferdetError(
                f"{out}: the run was started with distillation {recorded}, not {_distill_record(job)}; "
                "resume it with the same --distill-* options"
            )
    # the teacher first: a bad teacher folder fails before anything is written, and building it
    # does not shift the random state that build_model seeds
    teacher = None if job.distill is None else Teacher(job.distill.teacher, job.device)
    model = build_model(job, dataset, train_records).to(job.device)
    distiller = None if teacher is None else Distiller(model, teacher, job.distill, dataset.classes)
    out.mkdir(parents=True, exist_ok=True)
    net = torch.nn.parallel.DistributedDataParallel(model) if group.active else model
    optimizer = _optimizer(recipe, model, group.world)
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    if distiller is not None:
        distiller.install()
    total = total_iterations(recipe, len(train_records))
    start, plateau = 0, {"best": -1.0, "bad": 0, "factor": 1.0}
    log_mode = "w"
    if resume:
        state = torch.load(checkpoint_path, map_location=job.device, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start, plateau = state["iteration"], state["plateau"]
        _restore_random_state(state["random"][group.rank])
        log_mode = "a"
        if group.main:
            _truncate_log(out / "log.jsonl", start)
    elif group.main:
        job_record = {
            **{k: str(v) for k, v in asdict(job).items() if k not in ("recipe", "options", "distill")},
            "distill": _distill_record(job),
            "iterations": total,
        }
        atomic_write_bytes(
            out / "recipe.json",
            json.dumps(
                {"recipe": recipe.model_dump(), "job": job_record, "detector": detector_record(model, dataset.classes)},
                indent=1,
            ).encode(),
        )
    data = SeededAugmentation(
        TorchDetectionDataset(
            train_records,
            training_transforms(recipe.flip),
            with_masks=model.detector_config.kind == "mask_rcnn_fpn",
            label_offset=model.label_offset,
        ),
        job.seed,
    )
    loader = torch.utils.data.DataLoader(
        data,
        batch_sampler=StreamBatchSampler(
            len(train_records),
            recipe.batch_size,
            job.seed,
            start,
            total,
            group.rank,
            group.world,
            aspect_groups(train_records) if recipe.aspect_grouping else None,
        ),
        collate_fn=collate_detection,
        num_workers=recipe.num_workers,
        generator=torch.Generator().manual_seed(job.seed),  # keeps the global random state untouched
    )
    switch = total // 2 if recipe.second_step_lr_factor else None
    scaler = torch.amp.GradScaler("cuda", enabled=recipe.amp and str(job.device).startswith("cuda"))
    last_good = None
    board = _tensorboard(out) if group.main else None
    with _log_file(out / "log.jsonl", log_mode, group.main) as log:
        iteration = start
        for images, targets in loader:
            phase = 1.0
            if switch is not None and iteration >= switch:
                phase = recipe.second_step_lr_factor
                for parameter in _body(model).parameters():
                    parameter.requires_grad_(True)
            factor = learning_rate_factor(recipe, iteration, total) * plateau["factor"] * phase
            for param_group, base in zip(optimizer.param_groups, base_lrs, strict=True):
                param_group["lr"] = base * factor
            model.train()
            images = [image.to(job.device) for image in images]
            targets = [{k: (v.to(job.device) if torch.is_tensor(v) else v) for k, v in t.items()} for t in targets]
            if distiller is not None:
                distiller.annotate(images, targets)
            with torch.autocast("cuda", enabled=scaler.is_enabled()):
                losses = net(images, targets)
            loss = sum(losses.values())
            if distributed.any_true(group, not torch.isfinite(loss)):
                values = ", ".join(f"{k} {v.item():.4g}" for k, v in losses.items())
                kept = (
                    f"the last good checkpoint is {checkpoint_path}"
                    if last_good is not None or resume
                    else "no checkpoint was written"
                )
                raise TransferdetError(f"loss is {loss.item()} at iteration {iteration} ({values}); stopped, {kept}")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if recipe.grad_clip:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            iteration += 1
            scalars = {
                "loss": loss.item(),
                **{k: v.item() for k, v in losses.items()},
                "lr": optimizer.param_groups[0]["lr"],
            }
            log.write(json.dumps({"iteration": iteration, "time": time.time(), **scalars}) + "\n")
            if board is not None:
                for key, value in scalars.items():
                    board.add_scalar(f"train/{key}", value, iteration)
            if on_iteration is not None:
                on_iteration(iteration, total, scalars)
            evaluate_now = recipe.eval_every and iteration % recipe.eval_every == 0 and iteration < total
            if evaluate_now and test_split is not None:
                metrics = evaluate(model, dataset, test_split, job.device, group)
                log.write(json.dumps({"iteration": iteration, "eval": {k: metrics[k] for k in ("AP", "AP50")}}) + "\n")
                if recipe.schedule == "plateau":
                    _plateau_step(plateau, metrics["AP"] or 0.0)
            if iteration % recipe.checkpoint_every == 0 or iteration == total:
                log.flush()
                states = distributed.gather(group, _random_state())
                if group.main:
                    save_checkpoint(
                        checkpoint_path,
                        {
                            "model": model.state_dict(),
                            "optimizer": optimizer.state_dict(),
                            "iteration": iteration,
                            "plateau": plateau,
                            "random": states,
                        },
                    )
                last_good = iteration
    if board is not None:
        board.close()
    if distiller is not None:
        distiller.remove()
    metrics: dict[str, Any] = {"iterations": total, "world_size": group.world}
    if test_split is not None:
        metrics.update(evaluate(model, dataset, test_split, job.device, group))
        metrics["split"] = test_split
    if group.active:  # every process must end with the same weights
        checksums = distributed.gather(group, weights_checksum(model))
        metrics["ranks_agree"] = all(c == checksums[0] for c in checksums)
        if not metrics["ranks_agree"]:
            raise TransferdetError(f"processes ended with different weights (checksums {checksums})")
    if group.main:
        atomic_write_bytes(out / "metrics.json", json.dumps(metrics, indent=1).encode())
        from transferdet.train.summary import write_summary

        write_summary(out)
    return metrics


def _distill_record(job: TrainJob) -> dict[str, Any] | None:
    """The job's distillation settings as ``recipe.json`` keeps them."""
    return None if job.distill is None else {**asdict(job.distill), "teacher": str(job.distill.teacher)}


def _tensorboard(out: Path) -> Any:
    """A TensorBoard writer into ``out/tensorboard`` when tensorboard is installed (extra
    ``[tensorboard]``), else None."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(out / "tensorboard"))


def _log_file(path: Path, mode: str, main: bool) -> contextlib.AbstractContextManager:
    """The run's log on rank 0; a throwaway buffer on the other processes."""
    return open(path, mode, encoding="utf-8") if main else contextlib.nullcontext(io.StringIO())  # noqa: SIM115


def _plateau_step(plateau: dict, ap: float, patience: int = 2, factor: float = 0.1) -> None:
    """ReduceLROnPlateau on AP: divide the learning rate after ``patience`` evaluations without gain."""
    if ap > plateau["best"]:
        plateau["best"], plateau["bad"] = ap, 0
        return
    plateau["bad"] += 1
    if plateau["bad"] > patience:
        plateau["factor"] *= factor
        plateau["bad"] = 0


def _truncate_log(path: Path, iteration: int) -> None:
    """Drop log lines past the checkpoint's iteration (written before a kill)."""
    if not path.is_file():
        return
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    kept = [line for line in lines if json.loads(line).get("iteration", 0) <= iteration]
    path.write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")
