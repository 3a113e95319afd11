"""Whole classification models (timm or torchvision) with a head of any size: what the offline
zoo pretrains and what the distillation teacher is."""

from __future__ import annotations

from torch import nn

from transferdet.errors import TransferdetError
from transferdet.models.normalisation import IMAGENET_MEAN, IMAGENET_STD, config_normalisation
from transferdet.models.specs import parse_spec


def classification_model(arch: str, num_classes: int) -> tuple[nn.Module, tuple[float, ...], tuple[float, ...]]:
    """The library's classification model for ``arch`` with a ``num_classes`` head, and the input
    mean/std it expects."""
    spec = parse_spec(arch)
    if spec.library == "timm":
        import timm

        model = timm.create_model(spec.name, pretrained=False, num_classes=num_classes)
        return model, *config_normalisation(model.pretrained_cfg)
    import torchvision

    try:
        model = torchvision.models.get_model(spec.name, weights=None, num_classes=num_classes)
    except (ValueError, TypeError) as error:
        raise TransferdetError(f"{arch}: {error}") from None
    return model, IMAGENET_MEAN, IMAGENET_STD
