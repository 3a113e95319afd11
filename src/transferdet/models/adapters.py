"""The adapter of a spec's library builds its architecture: timm or torchvision; and which of the
backbone paths it takes (a stage list, or an extractor), with that path's version, for caches."""

from __future__ import annotations

import torch

from transferdet.models.architecture import Architecture
from transferdet.models.specs import ModelSpec
from transferdet.models.timm_adapter import features_model, stage_list, timm_architecture
from transferdet.models.torchvision_adapter import torchvision_architecture, torchvision_model, torchvision_stages
from transferdet.models.torchvision_vit import is_torchvision_vit

# a path's features change with its version; the stage-list path (version 0) keeps the keys it
# always had, so that existing caches and stores stay valid. timm-maps 2: maps resampled to their
# snapped stride and fixed-size models fed a resized image
PATH_VERSIONS = {"stages": 0, "torchvision-extractor": 1, "torchvision-vit": 1, "timm-maps": 2}


def build_architecture(spec: ModelSpec) -> Architecture:
    """The architecture ``spec`` names, from the adapter of its library (no checkpoint read)."""
    if spec.library == "timm":
        return timm_architecture(spec)
    return torchvision_architecture(spec)


def backbone_path(spec: ModelSpec) -> str:
    """Which backbone path ``spec``'s architecture takes, decided on the meta device where the
    model builds there (no weights, no forward pass; RegNet's init needs real tensors)."""
    if spec.library == "timm":
        with torch.device("meta"):  # the probe runs on shapes only
            stages = stage_list(features_model(spec, weights=False)) is not None
        return "stages" if stages else "timm-maps"
    try:
        with torch.device("meta"):
            model = torchvision_model(spec, weights=False)
    except NotImplementedError:  # "Cannot copy out of meta tensor"
        model = torchvision_model(spec, weights=False)
    if is_torchvision_vit(model):
        return "torchvision-vit"
    return "stages" if torchvision_stages(model, spec.name)[0] else "torchvision-extractor"


def path_version(spec: ModelSpec) -> dict[str, str]:
    """The cache-key field of ``spec``'s backbone path: none for the stage list (its keys are as
    they always were), ``{"backbone": "timm-maps-v2"}`` and the like otherwise."""
    try:
        path = backbone_path(spec)
    except Exception:  # noqa: BLE001 - an architecture that cannot be built on meta: a key of its own
        return {"backbone": "unknown"}
    return {} if path == "stages" else {"backbone": f"{path}-v{PATH_VERSIONS[path]}"}
