"""Training a detector from a :class:`TrainJob`: the wiring of data, model, schedule and loop.

The run folder and its files belong to :class:`~transferdet.runs.RunDir`. ``resume=True``
continues from its checkpoint: with the same seed, the final weights and metrics equal those of an
uninterrupted run. Under ``torchrun`` every process runs :func:`train` and rank 0 alone writes.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace
from typing import Any

import torch

from transferdet.data.dataset import DetectionDataset, ImageRecord
from transferdet.data.loader import load_dataset
from transferdet.data.split import held_out_split, training_split, validation_split
from transferdet.distill.distiller import Distiller
from transferdet.distill.teacher import Teacher
from transferdet.errors import TransferdetError
from transferdet.models.native_detectors import native_body
from transferdet.runs import RunDir
from transferdet.train import distributed
from transferdet.train.assemble import build_model, build_optimizer, training_loader
from transferdet.train.evaluation import evaluate, evaluate_keeping, weights_checksum
from transferdet.train.job import TrainJob
from transferdet.train.loop import IterationCallback, Session, run_loop
from transferdet.train.schedule import Plateau, total_iterations
from transferdet.train.state import restore_training_state


def train(job: TrainJob, resume: bool = False, on_iteration: IterationCallback | None = None) -> dict[str, Any]:
    """Run (or resume) ``job``; returns the final metrics."""
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


def job_data(job: TrainJob) -> tuple[DetectionDataset, list[ImageRecord], str | None, str | None]:
    """The dataset, the training images that have boxes, the split to report on and, for a recipe
    that evaluates during training, the validation split it evaluates on (never the reported one)."""
    dataset = load_dataset(job.data, job.format, job.options, job.on_bad_box, seed=job.data_seed)
    train_split = training_split(dataset, job.train_split)
    test_split = held_out_split(dataset, job.test_split, besides=train_split)
    for name in (train_split, test_split):
        if name is not None and name not in dataset.splits and "+" not in name:
            raise TransferdetError(f"no split {name!r} (splits: {', '.join(dataset.splits)})")
    val_split = None
    if job.recipe.eval_every or job.carve_validation:
        dataset, train_split, val_split = validation_split(dataset, train_split, test_split, job.data_seed)
    # crowd regions are not objects to learn (as torchvision's and detectron2's COCO loaders);
    # VOC's difficult boxes are trained on (detectron2's VOC loader keeps them)
    records = [r.subset(~r.flags("crowd")) for r in dataset.records(train_split)]
    records = [r for r in records if r.num_boxes > 0]
    if not records:
        raise TransferdetError(f"split {train_split!r} has no image with boxes to train on")
    return dataset, records, test_split, val_split


def _check_run_folder(job: TrainJob, run: RunDir, resume: bool) -> None:
    if resume and not run.has_checkpoint():
        raise TransferdetError(f"{run.checkpoint_file}: no checkpoint to resume from")
    if not resume and run.holds_anything():
        raise TransferdetError(f"{run.path}: holds a run already (pass --resume to continue it, or another --out)")
    recorded = run.recorded_job() if resume else None
    if recorded is not None and recorded.get("distill") != job.distill_record():
        raise TransferdetError(
            f"{run.path}: the run was started with distillation {recorded.get('distill')}, not "
            f"{job.distill_record()}; resume it with the same --distill-* options"
        )


def _train(job: TrainJob, group: distributed.Group, resume: bool, on_iteration: IterationCallback | None) -> dict:
    dataset, records, test_split, val_split = job_data(job)
    run = RunDir(job.out)
    _check_run_folder(job, run, resume)
    # the teacher first: a bad teacher folder fails before anything is written, and building it
    # does not shift the random state that build_model seeds
    teacher = None if job.distill is None else Teacher(job.distill.teacher, job.device)
    model = build_model(job, dataset, records).to(job.device)
    distiller = None if teacher is None else Distiller(model, teacher, job.distill, dataset.classes)
    run.path.mkdir(parents=True, exist_ok=True)
    net = torch.nn.parallel.DistributedDataParallel(model) if group.active else model
    total = total_iterations(job.recipe, len(records), group.world)
    optimizer = build_optimizer(job.recipe, model, group.world)
    session = Session(
        model, net, optimizer, job.recipe, job.device, group, run, dataset, test_split, total, Plateau(),
        resumed=resume, distiller=distiller, val_split=val_split, stop=min(total, job.stop_at or total),
        eval_test_at=tuple(job.eval_test_at),
    )  # fmt: skip
    if distiller is not None:
        distiller.install()
    start = 0
    if resume:
        start, session.plateau = restore_training_state(
            run.load_checkpoint(job.device), model, session.optimizer, group.rank, session.scaler
        )
        if group.main:
            run.truncate_log(start)
    elif group.main:
        body = native_body(model)  # the input normalisation the weights expect, for reloading
        record = {**model.detector_config.to_record(), "classes": dataset.classes, "mean": body.mean, "std": body.std}
        transfer = getattr(model, "transfer_report", None)  # a whole detector carried over: what transferred
        job_record = job.record(total) | ({"transfer_report": transfer.as_dict()} if transfer is not None else {})
        run.write_manifest(job.recipe.model_dump(), job_record, record)
    board = _tensorboard(run) if group.main else None
    with run.log(append=resume, write=group.main) as log:
        loader = training_loader(job, model, records, start, session.stop, group.rank, group.world)
        run_loop(session, loader, start, log, board, on_iteration)
    if board is not None:
        board.close()
    if distiller is not None:
        distiller.remove()
    return _finish(session, group)


def _finish(session: Session, group: distributed.Group) -> dict[str, Any]:
    """The final evaluation (a rung's on the validation split, the run unfinished); under DDP, a
    check that every process ends with the same weights."""
    if session.stop < session.total:
        return _finish_rung(session, group)
    metrics: dict[str, Any] = {"iterations": session.total, "world_size": group.world}
    if session.test_split is not None:
        metrics.update(evaluate(session.model, session.dataset, session.test_split, session.device, group))
        metrics["split"] = session.test_split
    if group.active:  # every process must end with the same weights
        checksums = distributed.gather(group, weights_checksum(session.model))
        metrics["ranks_agree"] = all(c == checksums[0] for c in checksums)
        if not metrics["ranks_agree"]:
            raise TransferdetError(f"processes ended with different weights (checksums {checksums})")
    if group.main:
        from transferdet.train.summary import write_summary

        session.run.write_metrics(metrics)
        write_summary(session.run)
    return metrics


def _finish_rung(session: Session, group: distributed.Group) -> dict[str, Any]:
    """A rung of select's race: the validation split's AP at the stop, kept in the run folder."""
    if session.val_split is None:
        raise TransferdetError("a rung needs a validation split: train with carve_validation")
    scores, predictions = evaluate_keeping(session.model, session.dataset, session.val_split, session.device, group)
    record = {"iteration": session.stop, "split": session.val_split, **{k: scores[k] for k in ("AP", "AP50")}}
    if group.main:  # the predictions first: a rung recorded has its per-image records (the race's image noise)
        session.run.write_rung_predictions(session.stop, predictions)
        session.run.write_rung(record)
    return record


def _tensorboard(run: RunDir) -> Any:
    """A TensorBoard writer into the run's ``tensorboard/`` when tensorboard is installed (extra
    ``[tensorboard]``), else None."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(run.path / "tensorboard"))
