"""The adapter of a spec's library builds its architecture: timm or torchvision."""

from __future__ import annotations

from transferdet.models.architecture import Architecture
from transferdet.models.specs import ModelSpec
from transferdet.models.timm_adapter import timm_architecture
from transferdet.models.torchvision_adapter import torchvision_architecture


def build_architecture(spec: ModelSpec) -> Architecture:
    """The architecture ``spec`` names, from the adapter of its library (no checkpoint read)."""
    if spec.library == "timm":
        return timm_architecture(spec)
    return torchvision_architecture(spec)
