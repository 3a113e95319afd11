"""Ranking candidate backbones on a detection dataset without fine-tuning.

For each model: per-box features on the chosen layer (cached), then the metric suite
(:mod:`~transferdet.transfer.scoring`: a metric that cannot score says why in its row, with
``score`` None, and the others are still computed). LEEP and NCE use the checkpoint's own
classifier on the box features where it has a plain linear one whose weights the checkpoint holds
(c5 only); otherwise they are reported as unavailable (no row). Regression metrics (TLogME, LogME
on boxes, ETran's term) see the box coordinates standardised. On single-class data, background
RoIs join as an extra class (:mod:`~transferdet.transfer.background`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from transferdet.data import formats
from transferdet.data.dataset import ImageRecord
from transferdet.data.formats.base import ReadOptions
from transferdet.data.split import ensure_split, training_split
from transferdet.data.validation import apply_bad_box_policy
from transferdet.devices import default_device
from transferdet.errors import TransferdetError
from transferdet.hashing import file_digest
from transferdet.metrics import METRICS
from transferdet.metrics.suite import SOURCE_METRICS
from transferdet.models.backbones import build_backbone
from transferdet.models.specs import parse_spec
from transferdet.runs import RunDir
from transferdet.transfer import cache
from transferdet.transfer.background import BACKGROUND, default_background, with_background
from transferdet.transfer.features import BoxFeatures, extract_box_features, sample_records
from transferdet.transfer.scoring import score_features

DEFAULT_METRICS = ("logme", "tlogme", "h_score", "reg_h_score", "transrate", "sfda", "etran", "gbc", "leep", "nce")


@dataclass(frozen=True)
class RankSettings:
    layer: str = "c5"
    features: str = "local"
    image_size: int = 512
    max_images: int | None = None
    max_boxes_per_class: int | None = None
    seed: int = 0
    batch_size: int = 8
    device: str = field(default_factory=default_device)
    background: int | None = None  # background RoIs per image; None: 2 on single-class data, else 0


@dataclass(frozen=True)
class RankTarget:
    """The dataset as ranking sees it: the sampled records (background boxes added), its classes
    (``background`` last when added), and an identity that changes with anything that changes
    the boxes or labels (path, format, read options, annotation content, sampling)."""

    records: list[ImageRecord]
    classes: list[str]
    identity: str


def standardised(targets: np.ndarray) -> np.ndarray:
    """Box targets with zero mean and unit variance per coordinate: LogME's regression has no
    intercept, so raw [0, 1] coordinates would mostly measure how well features fit a constant."""
    std = targets.std(axis=0)
    return (targets - targets.mean(axis=0)) / np.where(std > 0, std, 1.0)


def rank_target(
    data: str | Path, format: str, options: ReadOptions, split: str | None, settings: RankSettings
) -> RankTarget:
    """Read ``data`` (bad boxes dropped, split if it has none), sample it and add background boxes."""
    dataset = apply_bad_box_policy(ensure_split(formats.read(data, format, options), settings.seed), "drop")
    split = training_split(dataset, split)
    if split not in dataset.splits:
        raise TransferdetError(f"no split {split!r} (splits: {', '.join(dataset.splits)})")
    records = sample_records(dataset.records(split), settings.max_images, settings.max_boxes_per_class, settings.seed)
    background = default_background(dataset.classes, settings.background)
    classes = list(dataset.classes) + ([BACKGROUND] if background else [])
    records = with_background(records, background, len(dataset.classes), settings.seed)
    identity = cache.dataset_identity(data, format, options, classes, records, bad_boxes="drop", split=split)
    return RankTarget(records, classes, identity)


def model_features(
    spec_text: str,
    target: RankTarget,
    settings: RankSettings,
    cache_dir: Path | None,
    progress: Callable[[int, int], None] | None = None,
) -> BoxFeatures:
    spec = parse_spec(spec_text)
    run = RunDir(spec.checkpoint) if spec.is_detector_run else None
    if run is not None:
        weights = run.checkpoint_digest()
    else:
        weights = file_digest(spec.checkpoint) if spec.checkpoint else spec.weights
    key = cache.cache_key(
        spec=spec.arch,
        weights=weights,
        dataset=target.identity,
        layer=settings.layer,
        features=settings.features,
        image_size=settings.image_size,
        seed=settings.seed,
    )
    if cache_dir is not None:
        cached = cache.load(cache_dir, key)
        if cached is not None:
            return cached
    torch.manual_seed(settings.seed)  # random-init weights are part of the spec's meaning
    detector = None
    if run is not None:
        detector, _ = run.load_detector()
        trained_arch = run.backbone_arch()
        if trained_arch != spec.arch:
            raise TransferdetError(f"{spec_text}: the run in {spec.checkpoint} trained {trained_arch}, not {spec.arch}")
        backbone = detector.backbone.body
    else:
        backbone = build_backbone(spec)
    total = len(target.records)
    result = extract_box_features(
        backbone,
        target.records,
        settings.layer,
        settings.features,
        settings.image_size,
        settings.batch_size,
        settings.device,
        classifier=backbone.classifier,
        progress=(lambda done: progress(done, total)) if progress else None,
        detector=detector,
    )
    if cache_dir is not None:
        cache.save(cache_dir, key, result)
    return result


def _rows(spec_text: str, settings: RankSettings, features: BoxFeatures, wanted: list[str], classes: list[str]):  # noqa: ANN202
    names = [m for m in wanted if m not in SOURCE_METRICS or features.source_probs is not None]
    outcomes = score_features(
        features.features, features.labels, standardised(features.boxes), features.source_probs, names, classes
    )
    return [
        {
            "model": spec_text,
            "layer": settings.layer,
            "features": settings.features,
            "metric": metric,
            "score": outcome.score,
            "status": outcome.status,
            "reason": outcome.reason,
            "note": outcome.note,
        }
        for metric, outcome in outcomes.items()
    ]


def rank(
    data: str | Path,
    models: Sequence[str],
    metrics: Sequence[str] | None = None,
    split: str | None = None,
    settings: RankSettings | None = None,
    format: str = "auto",
    options: ReadOptions | None = None,
    cache_dir: Path | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> list[dict]:
    """Rows ``{"model", "layer", "features", "metric", "score", "status", "reason", "note"}``, one
    per model and metric; ``model`` is the spec as given; ``score`` is None (``status`` failed)
    where the metric cannot score these features, ``reason`` says why; ``note`` says what a metric
    left out (a class with too few boxes)."""
    settings = settings or RankSettings()
    wanted = list(metrics or DEFAULT_METRICS)
    unknown = [m for m in wanted if m not in METRICS]
    if unknown:
        raise TransferdetError(f"unknown metric(s) {', '.join(unknown)} (known: {', '.join(METRICS)})")
    if not models:
        raise TransferdetError("no models to rank")
    target = rank_target(data, format, options or ReadOptions(), split, settings)
    rows = []
    for spec_text in models:
        report = (lambda done, total, s=spec_text: progress(s, done, total)) if progress else None
        features = model_features(spec_text, target, settings, cache_dir, report)
        rows += _rows(spec_text, settings, features, wanted, target.classes)
    return rows
