"""torchvision classification models as :class:`~transferdet.models.backbone.Backbone` stages
(ResNet family by its layers, MobileNet/EfficientNet/ConvNeXt/Swin by ``features``)."""

from __future__ import annotations

import torch
from torch import nn

from transferdet.errors import TransferdetError
from transferdet.models.architecture import Architecture
from transferdet.models.backbone import Backbone, dedupe_outputs, feature_name
from transferdet.models.specs import ModelSpec


def _torchvision_model(spec: ModelSpec) -> nn.Module:
    import torchvision

    if spec.name not in torchvision.models.list_models(module=torchvision.models):
        raise TransferdetError(f"{spec.arch}: torchvision has no classification model {spec.name!r}")
    weights = "DEFAULT" if spec.weights == "pretrained" else None
    return torchvision.models.get_model(spec.name, weights=weights)


def _torchvision_stages(model: nn.Module, name: str) -> tuple[list[tuple[str, nn.Module]], bool]:
    if all(hasattr(model, f"layer{i}") for i in range(1, 5)):  # ResNet, ResNeXt, Wide ResNet
        stem = nn.Sequential(model.conv1, model.bn1, model.relu)
        stages = [("stem", stem), ("maxpool", model.maxpool)] + [
            (f"layer{i}", getattr(model, f"layer{i}")) for i in range(1, 5)
        ]
        return stages, False
    if isinstance(getattr(model, "features", None), nn.Sequential):
        stages = [(f"features_{i}", child) for i, child in enumerate(model.features)]
        return stages, name.startswith("swin")
    raise TransferdetError(
        f"torchvision:{name}: no stage structure known for this family "
        "(ResNet, MobileNet, EfficientNet, ConvNeXt, Swin)"
    )


@torch.no_grad()
def _measure(stages: list[tuple[str, nn.Module]], nhwc: bool, size: int = 224) -> list[tuple[int, int]]:
    """(stride, channels) after each stage, from one forward pass of a blank image."""
    x = torch.zeros(1, 3, size, size)
    shapes = []
    for _, stage in stages:
        training = stage.training
        stage.eval()
        x = stage(x)
        stage.train(training)
        height, channels = (x.shape[1], x.shape[3]) if nhwc else (x.shape[2], x.shape[1])
        shapes.append((round(size / height), int(channels)))
    return shapes


def _backbone(model: nn.Module, name: str) -> Backbone:
    stages, nhwc = _torchvision_stages(model, name)
    shapes = _measure(stages, nhwc)
    outputs: dict[str, str] = {}
    for (stage, _), (stride, _) in zip(stages, shapes, strict=True):
        if stride >= 2:
            outputs[stage] = feature_name(stride)
    outputs = dedupe_outputs(outputs, [n for n, _ in stages])
    channels = {feature_name(s): c for s, c in shapes}
    strides = {feature_name(s): s for s, _ in shapes}
    last = max(list(dict(stages)).index(s) for s in outputs)
    return Backbone(
        stages[: last + 1],
        outputs,
        {o: channels[o] for o in outputs.values()},
        {o: strides[o] for o in outputs.values()},
        nhwc=nhwc,
    )


def _linear_head(model: nn.Module, channels: int) -> str | None:
    """The key prefix of a classifier that is one linear layer (after dropout) on pooled c5."""
    if isinstance(getattr(model, "fc", None), nn.Linear) and model.fc.in_features == channels:
        return "fc"
    classifier = getattr(model, "classifier", None)
    if isinstance(classifier, nn.Sequential) and all(isinstance(m, nn.Dropout | nn.Linear) for m in classifier):
        linears = [(i, m) for i, m in enumerate(classifier) if isinstance(m, nn.Linear)]
        if len(linears) == 1 and linears[0][1].in_features == channels:
            return f"classifier.{linears[0][0]}"
    return None


def torchvision_architecture(spec: ModelSpec) -> Architecture:
    model = _torchvision_model(spec)
    backbone = _backbone(model, spec.name)
    used = {id(t) for m in backbone.stages.values() for t in [*m.parameters(), *m.buffers()]}
    named = [*model.named_parameters(), *model.named_buffers()]
    target = {k: tuple(v.shape) for k, v in model.state_dict().items()}

    def assign(loaded: dict[str, torch.Tensor]) -> None:
        model.load_state_dict(loaded, strict=False)

    keys = [k for k, t in named if id(t) in used]
    return Architecture(backbone, target, keys, assign, _linear_head(model, backbone.channels["c5"]))
