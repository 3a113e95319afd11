"""A recipe made concrete: the detector (config from the recipe and the training boxes), its
optimizer (learning rate scaled to the total batch), and the seeded training data loader."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from transferdet.data.dataset import DetectionDataset, ImageRecord
from transferdet.data.transforms import TorchDetectionDataset, collate_detection, detection_transforms
from transferdet.errors import TransferdetError
from transferdet.models.anchors import auto_anchors, resized_box_shapes, ssd_scales
from transferdet.models.backbones import build_backbone
from transferdet.models.detector_sources import read_detector_source
from transferdet.models.detector_transfer import STRUCTURE, DetectorSource, read_class_map, transfer_state
from transferdet.models.detectors import DetectorConfig, build_detector
from transferdet.models.native_detectors import native_body
from transferdet.models.norms import norm_for_processes
from transferdet.models.specs import parse_spec
from transferdet.models.torchvision_detectors import is_torchvision_detector
from transferdet.train.job import TrainJob
from transferdet.train.recipes import Recipe
from transferdet.train.sampling import SeededAugmentation, StreamBatchSampler


def detector_config(recipe: Recipe, kind: str, num_classes: int, train_records: list[ImageRecord]) -> DetectorConfig:
    """The detector a recipe asks for; ``anchors: auto`` fits anchors (and SSD scales) to the
    training boxes as the detector will see them; SyncBN only inside a process group."""
    size = max(recipe.min_size)
    shapes = resized_box_shapes(train_records, size, recipe.max_size)
    auto = recipe.anchors == "auto"
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()  # DDP's group
    return DetectorConfig(
        kind,
        num_classes,
        min_size=tuple(recipe.min_size),
        max_size=recipe.max_size,
        fpn_channels=recipe.fpn_channels,
        norm=norm_for_processes(recipe.norm, distributed),
        fpn_norm=norm_for_processes(recipe.fpn_norm, distributed),
        freeze_at=recipe.freeze_at,
        anchors=auto_anchors(shapes) if auto else None,
        ssd_scales=ssd_scales(shapes, size, 5) if auto else None,
        extra={"box_batch_size_per_image": recipe.rois_per_image} if recipe.rois_per_image and "rcnn" in kind else {},
        test_size=recipe.test_size,
    )


def _structure(record: dict) -> dict:
    """The structure fields of a source detector's record, as DetectorConfig values."""
    values = DetectorConfig.from_record({**record, "num_classes": 1})
    return {name: getattr(values, name) for name in STRUCTURE}


def body(model: torch.nn.Module) -> torch.nn.Module:
    """The backbone body inside a torchvision detector (what ``freeze_body`` freezes)."""
    return native_body(model)


def build_model(job: TrainJob, dataset: DetectionDataset, train_records: list[ImageRecord]) -> torch.nn.Module:
    """The job's detector for ``dataset``'s classes, initialised under the job's seed, body frozen
    where the recipe says. A detector source transfers whole unless the job asks for its body only
    (the model then carries ``transfer_report``)."""
    torch.manual_seed(job.seed)
    config = detector_config(job.recipe, job.detector, len(dataset.classes), train_records)
    spec = parse_spec(job.backbone)
    source = read_detector_source(spec) if job.transfer == "whole" or is_torchvision_detector(spec) else None
    if source is None:  # a backbone, or a run folder's body (read by build_backbone)
        model = build_detector(build_backbone(spec), config)
    else:
        model = _from_source(job, config, source, dataset.classes)
    if job.recipe.freeze_body:
        body(model).requires_grad_(False)
    return model


def _from_source(job: TrainJob, config: DetectorConfig, source: DetectorSource, classes: list[str]) -> torch.nn.Module:
    """A detector built with the source's structure and its tensors carried over (whole), or its
    body alone (``transfer: body``)."""
    whole = job.transfer == "whole"
    if whole and source.kind != job.detector:
        raise TransferdetError(
            f"--detector {job.detector} conflicts with the source {source.origin}, a {source.kind} "
            "(a whole detector keeps its own kind; pass its kind, or --transfer body)"
        )
    if (source.record.get("builder") or "").startswith("ssdlite") and job.recipe.batch_size < 2:
        raise TransferdetError(f"{source.origin}: SSDlite trains BatchNorm on 1 x 1 maps, which needs batch_size 2 "
                               f"or more (the recipe has {job.recipe.batch_size}; --set batch_size=2)")  # fmt: skip
    if whole:  # the source's structure; the recipe's sampling (rois_per_image) over the source's own
        config = replace(
            config, **{**_structure(source.record), "extra": {**source.record.get("extra", {}), **config.extra}}
        )
    elif source.record.get("builder"):  # a builder used as torchvision builds it: its own structure, body alone
        config = replace(config, kind=source.kind, builder=source.record["builder"])
    model = build_detector(None if config.builder else build_backbone(source.body or job.backbone), config)
    pairs, class_map = (classes, source.classes), read_class_map(job.class_map)
    parts = None if whole else ("backbone",)
    model.transfer_report = transfer_state(model, source.state, source.origin, pairs, class_map, parts)
    return model


NORMS = (torch.nn.modules.batchnorm._NormBase, torch.nn.GroupNorm, torch.nn.LayerNorm)
POSITION_WORDS = ("pos_embed", "position", "relative_position_bias_table")


def parameter_groups(recipe: Recipe, model: torch.nn.Module) -> list[dict]:
    """One group, or, where the recipe exempts them (Swin's ``decay_mult=0.`` on norms and
    position embeddings/bias tables), the norm and position parameters without weight decay;
    with ``layer_decay`` on a plain ViT, each of those split further by lr scale (``lr_scale``)."""
    # every parameter, frozen ones too: a two-step recipe unfreezes the body later
    trained = list(model.named_parameters())
    exempt: set[int] = set()
    if not recipe.decay_norm_and_position:
        exempt = {id(p) for m in model.modules() if isinstance(m, NORMS) for p in m.parameters(recurse=False)}
        exempt |= {id(p) for n, p in trained if any(word in n for word in POSITION_WORDS)}
    scales = _layer_scales(recipe, model)
    if not scales:  # the groups every run before layer decay had (their optimizer states resume)
        if recipe.decay_norm_and_position:
            return [{"params": [p for _, p in trained]}]
        return [
            {"params": [p for _, p in trained if id(p) not in exempt]},
            {"params": [p for _, p in trained if id(p) in exempt], "weight_decay": 0.0},
        ]
    groups: dict[tuple[bool, float], list[torch.nn.Parameter]] = {}
    for _, parameter in trained:
        groups.setdefault((id(parameter) in exempt, scales.get(id(parameter), 1.0)), []).append(parameter)
    ordered = sorted(groups.items(), key=lambda item: (item[0][0], -item[0][1]))  # lr x 1 with decay first
    return [
        {"params": params, "lr_scale": scale, **({"weight_decay": 0.0} if no_decay else {})}
        for (no_decay, scale), params in ordered
    ]


def _layer_scales(recipe: Recipe, model: torch.nn.Module) -> dict[int, float]:
    """id(parameter) -> lr scale by depth (ViTDet's layer-wise decay, as detectron2's
    ``get_vit_lr_decay_rate``): group g of a plain body's n groups at ``decay ** (n - g)``."""
    if recipe.layer_decay is None:
        return {}
    groups = getattr(body(model), "groups", None)
    if not groups:
        return {}
    named = dict(body(model).named_parameters())
    decay, count = recipe.layer_decay, len(groups)
    return {id(named[n]): decay ** (count - depth) for depth, group in enumerate(groups) for n in group}


def build_optimizer(recipe: Recipe, model: torch.nn.Module, world: int) -> torch.optim.Optimizer:
    lr = recipe.lr * recipe.batch_size * world / recipe.base_batch  # linear scaling (Goyal et al., 2017)
    parameters = parameter_groups(recipe, model)
    for group in parameters:
        group["lr"] = lr * group.pop("lr_scale", 1.0)
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay)
    kind = torch.optim.AdamW if recipe.optimizer == "adamw" else torch.optim.Adam
    return kind(parameters, lr=lr, weight_decay=recipe.weight_decay)


def aspect_groups(records: list[ImageRecord]) -> np.ndarray:
    """0 for landscape (width >= height), 1 for portrait images."""
    return np.array([int(r.height > r.width) for r in records])


def training_loader(
    job: TrainJob, model: torch.nn.Module, records: list[ImageRecord], start: int, total: int, rank: int, world: int
) -> torch.utils.data.DataLoader:
    """Batches for iterations ``start .. total - 1`` of this process: a seeded sample stream and
    seeded augmentation, so a resumed run sees exactly the batches it would have seen."""
    recipe = job.recipe
    data = TorchDetectionDataset(
        records,
        detection_transforms(train=True, flip=recipe.flip),  # the detector resizes
        with_masks=model.detector_config.kind == "mask_rcnn_fpn",
        label_offset=model.label_offset,
    )
    groups = aspect_groups(records) if recipe.aspect_grouping else None
    return torch.utils.data.DataLoader(
        SeededAugmentation(data, job.seed),
        batch_sampler=StreamBatchSampler(len(records), recipe.batch_size, job.seed, start, total, rank, world, groups),
        collate_fn=collate_detection,
        num_workers=recipe.num_workers,
        generator=torch.Generator().manual_seed(job.seed),  # keeps the global random state untouched
    )
