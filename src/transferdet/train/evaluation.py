"""Evaluation during and at the end of training, sharded over the processes of a DDP run."""

from __future__ import annotations

from typing import Any

import torch

from transferdet.data.dataset import DetectionDataset
from transferdet.evaluate.coco_metrics import Prediction, coco_evaluate
from transferdet.evaluate.predict import predict
from transferdet.train import distributed


def evaluate(
    model: torch.nn.Module, dataset: DetectionDataset, split: str, device: str, group: distributed.Group | None = None
) -> dict[str, Any]:
    """COCO metrics on ``split``; under DDP each process predicts every world-th image and rank 0's
    result (computed on all predictions) is shared."""
    return evaluate_keeping(model, dataset, split, device, group)[0]


def evaluate_keeping(
    model: torch.nn.Module, dataset: DetectionDataset, split: str, device: str, group: distributed.Group | None = None
) -> tuple[dict[str, Any], list[Prediction] | None]:
    """:func:`evaluate`, and the predictions it scored, one per image of ``split`` (rank 0's; None elsewhere)."""
    group = group or distributed.Group()
    records = dataset.records(split)
    mine = list(range(group.rank, len(records), group.world))
    shards = distributed.gather(group, (mine, predict(model, [records[i] for i in mine], device)))
    metrics, predictions = None, None
    if group.main:
        predictions: list[Prediction | None] = [None] * len(records)
        for indices, predicted in shards:
            for i, prediction in zip(indices, predicted, strict=True):
                predictions[i] = prediction
        metrics = coco_evaluate(records, dataset.classes, predictions)
    return distributed.broadcast(group, metrics), predictions


def weights_checksum(model: torch.nn.Module) -> float:
    """Sum of all parameters: equal on every DDP process after each step. (BatchNorm running
    statistics are buffers, re-broadcast from rank 0 at each forward; rank 0's are the ones saved.)"""
    return float(sum(p.detach().double().sum() for p in model.parameters()))
