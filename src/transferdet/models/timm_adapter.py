"""timm models as :class:`~transferdet.models.backbone.Backbone` stages (``features_only``
wrappers, matched back to the classification model's key names that checkpoints use)."""

from __future__ import annotations

import torch
from torch import nn

from transferdet.errors import TransferdetError
from transferdet.models.architecture import Architecture
from transferdet.models.backbone import Backbone, dedupe_outputs, feature_name, runs_on_its_grid, snapped_stride
from transferdet.models.normalisation import config_normalisation
from transferdet.models.specs import ModelSpec
from transferdet.models.timm_maps import timm_maps_backbone
from transferdet.models.vit_checkpoints import plain_vit_converter


def _normalised(key: str) -> str:
    """timm's feature wrappers rename ``stages.0`` to ``stages_0``: compare keys modulo that."""
    return key.replace("_", ".")


def timm_stages(features: nn.Module) -> tuple[list[tuple[str, nn.Module]], dict[str, str]] | None:
    info = features.feature_info
    reductions = info.reduction()
    if hasattr(features, "return_layers") and isinstance(features, nn.ModuleDict):
        stages = list(features.items())
        # return_layers holds absolute feature indices (DLA's and TResNet's start at 1), which index
        # feature_info's full list, not reduction()'s selection
        outputs = {name: feature_name(info.reduction(int(i))) for name, i in features.return_layers.items()}
        return stages, outputs
    if hasattr(features, "_stage_out_idx") and hasattr(features, "blocks"):
        stem = nn.Sequential(features.conv_stem, features.bn1)
        stages = [("stem", stem)] + [(f"blocks_{i}", block) for i, block in enumerate(features.blocks)]
        names = [name for name, _ in stages]
        outputs = {names[position]: feature_name(reductions[i]) for position, i in features._stage_out_idx.items()}
        return stages, outputs
    return None  # not a list of stages: a wrapper's maps (models/timm_maps.py)


def stage_list(features: nn.Module) -> Backbone | None:
    """The backbone of a timm model that is one list of stages at power-of-two strides and runs at
    any input size (one probe at PROBE), as it always was built; None for any other model."""
    found = timm_stages(features)
    info = features.feature_info
    if found is None or any(snapped_stride(r) != r for r in info.reduction()):
        return None
    stages, outputs = found
    outputs = dedupe_outputs(outputs, [n for n, _ in stages])
    by_stride = {feature_name(r): c for r, c in zip(info.reduction(), info.channels(), strict=True)}
    strides = {feature_name(r): r for r in info.reduction()}
    mean, std = config_normalisation(getattr(features, "pretrained_cfg", None))
    backbone = Backbone(
        stages,
        outputs,
        {o: by_stride[o] for o in outputs.values()},
        {o: strides[o] for o in outputs.values()},
        nhwc=str(getattr(features, "output_fmt", "NCHW")).upper().endswith("NHWC"),
        mean=mean,
        std=std,
    )
    return backbone if runs_on_its_grid(backbone, *PROBE) else None


def _backbone(features: nn.Module) -> Backbone:
    # a stage list that runs at one size only (BoTNet's, HaloNet's fixed attention grids), passes
    # lists between its stages (SelecSLS) or has a stride that is not a power of two (Sequencer's 7)
    # takes the wrapper's path, which resizes and resamples; every other stage list is as it always was
    found = stage_list(features)
    if found is None:
        return timm_maps_backbone(features, *config_normalisation(getattr(features, "pretrained_cfg", None)))
    return found


def _linear_head(full: nn.Module, channels: int | None) -> str | None:
    """The key prefix of a timm model's classifier when it is one linear layer on average-pooled c5
    (ResNets, ConvNeXts, ...; not MobileNetV3, whose head has a convolution first)."""
    name = (getattr(full, "pretrained_cfg", None) or {}).get("classifier")
    classifier = full.get_classifier() if hasattr(full, "get_classifier") else None
    if not isinstance(name, str) or not isinstance(classifier, nn.Linear) or classifier.in_features != channels:
        return None
    head = getattr(full, "head", None)
    if head is not None and not isinstance(head, nn.Linear) and any(isinstance(m, nn.Conv2d) for m in head.modules()):
        return None
    return name


# a plain ViT's position embeddings interpolated to any input size, the input padded to whole
# patches (a patch-14 ViT on 32-divisible images): asked for where the model takes them
PROBE = (96, 160)  # a small non-square input, a multiple of 32 each way, to find fixed-size stage lists
DYNAMIC_SIZE = ({"dynamic_img_size": True, "dynamic_img_pad": True}, {"dynamic_img_size": True}, {})


def features_model(spec: ModelSpec, weights: bool = True) -> nn.Module:
    """timm's ``features_only`` model of ``spec``, built to take any input size where it can (with
    timm's pretrained weights where ``spec`` asks for them and ``weights`` is true)."""
    import timm

    pretrained = spec.weights == "pretrained" and weights
    for options in DYNAMIC_SIZE:
        try:
            return timm.create_model(spec.name, pretrained=pretrained, features_only=True, **options)
        except TypeError:
            if not options:
                raise
        except RuntimeError as error:
            raise TransferdetError(f"{spec.arch}: {error}") from None
    raise AssertionError("unreachable: the last options are none")


def timm_architecture(spec: ModelSpec) -> Architecture:
    """The backbone cut from timm's feature wrapper, matched against the classification model's
    names and shapes (built on the meta device: no memory, no weights)."""
    import timm

    features = features_model(spec)
    backbone = _backbone(features)
    with torch.device("meta"):
        full = timm.create_model(spec.name, pretrained=False)
    full_shapes = {k: tuple(v.shape) for k, v in full.state_dict().items()}
    by_norm = {_normalised(k): k for k in full_shapes}
    to_full = {}
    for key in features.state_dict():
        # FeatureGetterNet keeps the model as .model, some FeatureHookNets as .body
        related = [k for k in (key, key.removeprefix("model."), key.removeprefix("body.")) if _normalised(k) in by_norm]
        if not related:
            raise TransferdetError(f"{spec.arch}: cannot relate feature key {key} to the model's names")
        to_full[key] = by_norm[_normalised(related[0])]

    def assign(loaded: dict[str, torch.Tensor]) -> None:
        features.load_state_dict({fk: loaded[full] for fk, full in to_full.items() if full in loaded}, strict=False)

    head = _linear_head(full, backbone.channels.get("c5"))
    convert = plain_vit_converter(full) if len(backbone.feature_names) == 1 else None
    return Architecture(backbone, full_shapes, list(to_full.values()), assign, head, convert)
