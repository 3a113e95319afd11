"""Ranking candidate backbones on a detection dataset without fine-tuning.

For each model: per-box features on each chosen layer (one forward pass for all, each layer
cached), then the metric suite (:mod:`~transferdet.transfer.scoring`: a metric that cannot score
says why in its row, with ``score`` None, and the others are still computed). LEEP and NCE use the checkpoint's own
classifier on the box features where it has a plain linear one whose weights the checkpoint holds
(c5 only); otherwise they are reported as unavailable (no row). Regression metrics (TLogME, LogME
on boxes, ETran's term) see the box coordinates standardised. On single-class data, background
RoIs join as an extra class (:mod:`~transferdet.transfer.background`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from transferdet import precision
from transferdet.data import formats
from transferdet.data.dataset import ImageRecord
from transferdet.data.formats.base import ReadOptions
from transferdet.data.split import ensure_split, training_split
from transferdet.data.validation import apply_bad_box_policy
from transferdet.devices import default_device
from transferdet.errors import TransferdetError
from transferdet.hashing import file_digest
from transferdet.metrics import METRICS
from transferdet.metrics.suite import BASELINES as SUITE_BASELINES
from transferdet.models.adapters import build_architecture, path_version
from transferdet.models.backbone import Backbone
from transferdet.models.backbones import build_backbone
from transferdet.models.normalisation import sidecar_path
from transferdet.models.specs import ModelSpec, parse_spec, require_trained_arch
from transferdet.models.torchvision_detectors import (
    body_spec,
    is_native_detector,
    is_torchvision_detector,
    native_body_parameters,
)
from transferdet.run_detector import load_detector, mapped_body, source_detector
from transferdet.runs import RunDir
from transferdet.ties import rank_rows
from transferdet.transfer import cache
from transferdet.transfer.background import BACKGROUND, default_background, with_background
from transferdet.transfer.features import BoxFeatures, extract_layers, sample_records
from transferdet.transfer.layer_scores import variant_rows
from transferdet.transfer.native_taps import NATIVE_PATH, native_taps
from transferdet.transfer.poolers import detector_layer
from transferdet.transfer.recommended import LAYER as RECOMMENDED_LAYER
from transferdet.transfer.recommended import METRIC as RECOMMENDED_METRIC
from transferdet.transfer.scoring import Outcome
from transferdet.transfer.variants import base_layers, parse_layer, pyramid_only

# bumped when extraction changes what it computes, so that older cache entries are not reused
EXTRACTOR_VERSION = 5  # 4: batch norms folded into convolutions, 5: also across stages (float32 rounding)
_METRIC_ORDER = ("transrate", "logme", "tlogme", "h_score", "reg_h_score", "sfda", "etran", "gbc", "leep", "nce")
# the recommended metric first (transfer/recommended.py), then the others in a fixed order
DEFAULT_METRICS = (RECOMMENDED_METRIC, *(m for m in _METRIC_ORDER if m != RECOMMENDED_METRIC))
MODEL_SIZE = "model_size"  # the backbone's parameter count: a static ranker
IMAGENET_TOP1 = "imagenet_top1"  # the top-1 a model's entry states (models/model_card.py): another static ranker
CHANCE_TOP1 = 0.1  # a random initialisation's ImageNet-1k top-1 (%): chance over 1,000 classes, as the bench states
STATIC_SCORES = (MODEL_SIZE, IMAGENET_TOP1)
BASELINES = (*SUITE_BASELINES, *STATIC_SCORES)
# what rank computes unless told: the metrics, then the baselines that cost little (the linear
# probe takes seconds per model: asked for by name, and always in the bench)
DEFAULT_SCORES = (*DEFAULT_METRICS, *(b for b in BASELINES if b != "linear_probe"))
BENCH_SCORES = (*DEFAULT_METRICS, *BASELINES)
KNOWN_SCORES = (*METRICS, *STATIC_SCORES)


def layer_list(layers: str | Sequence[str]) -> tuple[str, ...]:
    """Layers as given (``"c4,c5"`` or a list), without blanks or repeats."""
    items = layers.split(",") if isinstance(layers, str) else [part for item in layers for part in item.split(",")]
    named = tuple(dict.fromkeys(item.strip() for item in items if item.strip()))
    if not named:
        raise TransferdetError("no layer given (e.g. --layer c5, or --layer c3,c4,c5)")
    return named


@dataclass(frozen=True)
class RankSettings:
    """How ranking extracts features. ``layers``: one or more (``"c4,c5"`` or a list), all from one
    forward pass."""

    layers: tuple[str, ...] | str = (RECOMMENDED_LAYER,)
    features: str = "local"
    image_size: int = 512
    max_images: int | None = None
    max_boxes_per_class: int | None = None
    seed: int = 0
    batch_size: int = 8
    device: str = field(default_factory=default_device)
    background: int | None = None  # background RoIs per image; None: 2 on single-class data, else 0
    precision: str = "fp32"  # of the forward pass: fp32, bf16, fp16 or auto (transferdet.precision)
    on_bad_box: str = "drop"  # the dataset's bad boxes: drop, clip, error or keep
    split_seed: int | None = None  # the seed of a split made for data without one (None: ``seed``)

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", layer_list(self.layers))
        for layer in self.layers:
            parse_layer(layer)  # a malformed variant fails here, before any work
        precision.resolve(self.precision, "cpu")  # an unknown name fails here, before any work


@dataclass(frozen=True)
class RankTarget:
    """The dataset as ranking sees it: the sampled records (background boxes added), its classes
    (``background`` last when added), and an identity that changes with anything that changes
    the boxes or labels (path, format, read options, annotation content, sampling)."""

    records: list[ImageRecord]
    classes: list[str]
    identity: str


def rank_target(
    data: str | Path, format: str, options: ReadOptions, split: str | None, settings: RankSettings
) -> RankTarget:
    """Read ``data`` (the bad-box policy applied, split if it has none), sample it and add background boxes."""
    split_seed = settings.seed if settings.split_seed is None else settings.split_seed
    dataset = ensure_split(formats.read(data, format, options), split_seed)
    dataset = apply_bad_box_policy(dataset, settings.on_bad_box)
    split = training_split(dataset, split)
    if split not in dataset.splits:
        raise TransferdetError(f"no split {split!r} (splits: {', '.join(dataset.splits)})")
    records = sample_records(dataset.records(split), settings.max_images, settings.max_boxes_per_class, settings.seed)
    background = default_background(dataset.classes, settings.background)
    classes = list(dataset.classes) + ([BACKGROUND] if background else [])
    records = with_background(records, background, len(dataset.classes), settings.seed)
    identity = cache.dataset_identity(data, format, options, classes, records, bad_boxes=settings.on_bad_box,
                                      split=split)  # fmt: skip
    return RankTarget(records, classes, identity)


def _weights_identity(spec: ModelSpec, run: RunDir | None) -> str | None:
    """The content digest of the weights (a run's checkpoint, a checkpoint file, with the sidecar
    that states its input normalisation), or their name; with the normalisation the model's entry
    states, if any."""
    stated = f"+mean{list(spec.mean)}std{list(spec.std)}" if spec.mean is not None else ""
    if run is not None:
        return run.checkpoint_digest() + stated
    if spec.checkpoint is None:
        return spec.weights + stated
    sidecar = sidecar_path(spec.checkpoint)
    return file_digest(spec.checkpoint) + (f"+{file_digest(sidecar)}" if sidecar.is_file() else "") + stated


def _feature_key(
    spec: ModelSpec, weights: str | None, target: RankTarget, settings: RankSettings, layer: str, path: dict[str, str]
) -> str:
    return cache.cache_key(
        spec=spec.arch,
        weights=weights,
        dataset=target.identity,
        layer=layer,
        features=settings.features,
        image_size=settings.image_size,
        seed=settings.seed,
        extractor=EXTRACTOR_VERSION,
        precision=precision.resolve(settings.precision, settings.device),
        **path,  # an extractor path's own version; nothing for the stage list
    )


def _network(spec: ModelSpec, run: RunDir | None, seed: int) -> tuple[Backbone, torch.nn.Module | None]:
    """The backbone to extract from, and the detector it belongs to when the weights are a detector
    (a detector file, or a run folder): rank reads the detector's own taps too."""
    torch.manual_seed(seed)  # random-init weights are part of the spec's meaning
    if run is None and not is_torchvision_detector(spec):
        return build_backbone(spec), None
    if run is None:  # a detector file: its body and its own taps
        detector = source_detector(spec)
    else:
        detector, _ = load_detector(run)
        require_trained_arch(run, spec)
    if is_native_detector(spec):  # torchvision's own modules, read through rank's names
        detector = native_taps(detector)
    body = detector.backbone.body
    if run is not None and spec.mean is not None and spec.std is not None:
        body.mean, body.std = spec.mean, spec.std
    return body, detector


def model_features(
    spec: str | ModelSpec,
    target: RankTarget,
    settings: RankSettings,
    cache_dir: Path | None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, BoxFeatures]:
    """The raw box features of every layer ``settings`` needs (a variant's base layers; of a pyramid's
    levels, those the backbone has): from the cache where there, the others from one forward pass;
    each layer is cached under its own key."""
    spec = parse_spec(spec)
    run = RunDir(spec.checkpoint) if spec.is_detector_run else None
    weights = _weights_identity(spec, run)  # hashed once, whatever the number of layers
    layers = base_layers(settings.layers)  # a variant (c5/wm64, pyramid/wm32) is made from raw layers
    # one meta-device build per model, whatever the number of layers
    path = NATIVE_PATH if is_native_detector(spec) else path_version(body_spec(spec))
    keys = {layer: _feature_key(spec, weights, target, settings, layer, path) for layer in layers}
    found = {layer: cache.load(cache_dir, key) for layer, key in keys.items()} if cache_dir is not None else {}
    missing = [layer for layer in layers if found.get(layer) is None]
    if missing:
        backbone, detector = _network(spec, run, settings.seed)
        optional = pyramid_only(tuple(settings.layers))  # a level the backbone lacks: its boxes read the nearest
        missing = [layer for layer in missing if layer not in optional or layer in backbone.feature_names]
    if missing:
        total = len(target.records)
        extracted = extract_layers(
            backbone,
            target.records,
            missing,
            settings.features,
            settings.image_size,
            settings.batch_size,
            settings.device,
            classifier=backbone.classifier,
            progress=(lambda done: progress(done, total)) if progress else None,
            detector=detector,
            precision=settings.precision,
        )
        for layer, features in extracted.items():
            found[layer] = features
            if cache_dir is not None:
                cache.save(cache_dir, keys[layer], features)
    return {layer: found[layer] for layer in layers if found.get(layer) is not None}


def parameter_count(spec: ModelSpec) -> int:
    """The backbone's parameters, counted on an architecture built without memory (meta device)."""
    if is_native_detector(spec):
        return native_body_parameters(spec.name)
    body = mapped_body(spec) if is_torchvision_detector(spec) else spec  # R50 or R101: the weights tell
    with torch.device("meta"):
        return sum(p.numel() for p in build_architecture(body).backbone.parameters())


def static_scores(spec: ModelSpec, wanted: Sequence[str]) -> dict[str, Outcome]:
    """The scores that do not look at the data: the parameter count, and the ImageNet top-1 where
    the model's entry states one or the weights are a random initialisation (chance, unless stated;
    no row otherwise, like LEEP without a source classifier)."""
    static = {}
    if MODEL_SIZE in wanted:
        static[MODEL_SIZE] = Outcome(float(parameter_count(spec)))
    top1 = spec.top1 if spec.top1 is not None or spec.weights != "random" else CHANCE_TOP1
    if IMAGENET_TOP1 in wanted and top1 is not None:
        static[IMAGENET_TOP1] = Outcome(float(top1))
    return static


def rank(
    data: str | Path,
    models: Sequence[str | ModelSpec],
    metrics: Sequence[str] | None = None,
    split: str | None = None,
    settings: RankSettings | None = None,
    format: str = "auto",
    options: ReadOptions | None = None,
    cache_dir: Path | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> list[dict]:
    """Rows ``{"model", "layer", "features", "metric", "score", "status", "reason", "note", "rank",
    "tied"}``, one per model, layer and metric (``rank`` among the models, ties shared:
    :func:`~transferdet.ties.rank_rows`);
    ``model`` is the spec as given (a ``ModelSpec`` as its text); ``score`` is None (``status``
    failed) where the metric cannot score these features, ``reason`` says why; ``note`` says what a
    metric left out (a class with too few boxes)."""
    settings = settings or RankSettings()
    wanted = list(metrics or DEFAULT_SCORES)
    unknown = [m for m in wanted if m not in KNOWN_SCORES]
    if unknown:
        raise TransferdetError(f"unknown metric(s) {', '.join(unknown)} (known: {', '.join(KNOWN_SCORES)})")
    if not models:
        raise TransferdetError("no models to rank")
    specs = [parse_spec(given) for given in models]
    if not any(s.is_detector_run or is_torchvision_detector(s) for s in specs):
        for layer in (lv for lv in settings.layers if detector_layer(lv)):
            raise TransferdetError(f"layer {layer!r}: a detector's tap; no model here is a detector source "
                                   "(a transferdet run folder or a detector file)")  # fmt: skip
    target = rank_target(data, format, options or ReadOptions(), split, settings)
    rows = []
    for given, spec in zip(models, specs, strict=True):
        name = str(given)
        report = (lambda done, total, s=name: progress(s, done, total)) if progress else None
        static = static_scores(spec, wanted)  # once per model, whatever the number of layers
        # a detector's own taps: detector sources only (a mixed list ranks them apart on those taps)
        detector = spec.is_detector_run or is_torchvision_detector(spec)
        layers = tuple(lv for lv in settings.layers if detector or not detector_layer(lv))
        if not layers:
            continue
        extracted = model_features(spec, target, replace(settings, layers=layers), cache_dir, report)
        for layer in layers:
            variant = parse_layer(layer)
            rows += variant_rows(name, variant, extracted, target.records, settings, wanted, target.classes, static,
                                 STATIC_SCORES)  # fmt: skip
    return rank_rows(rows, ("layer", "features", "metric"))
