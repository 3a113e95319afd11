"""torchvision classification models as :class:`~transferdet.models.backbone.Backbone` stages
(ResNet family by its layers, MobileNet/EfficientNet/ConvNeXt/Swin by ``features``), and any other
classifier as an :class:`~transferdet.models.extractor_backbone.ExtractorBackbone` through
``torchvision.models.feature_extraction``: its maps at the strides measured on a blank image,
snapped to powers of two (AlexNet's 224/6), each the shallowest-named node that ends that stride."""

from __future__ import annotations

import torch
from torch import nn

from transferdet.errors import TransferdetError
from transferdet.models.architecture import Architecture
from transferdet.models.backbone import Backbone, dedupe_outputs, feature_name, runs_on_its_grid, snapped_stride
from transferdet.models.extractor_backbone import ExtractorBackbone, ResizedInput
from transferdet.models.normalisation import IMAGENET_MEAN, IMAGENET_STD
from transferdet.models.specs import ModelSpec
from transferdet.models.torchvision_vit import is_torchvision_vit, position_converter, torchvision_vit_backbone


def torchvision_model(spec: ModelSpec, weights: bool = True) -> nn.Module:
    """The classifier ``spec`` names (its torchvision weights where it asks for ``pretrained`` and
    ``weights`` is true)."""
    import torchvision

    if spec.name not in torchvision.models.list_models(module=torchvision.models):
        raise TransferdetError(f"{spec.arch}: torchvision has no classification model {spec.name!r}")
    weights = "DEFAULT" if spec.weights == "pretrained" and weights else None
    return torchvision.models.get_model(spec.name, weights=weights)


def torchvision_stages(model: nn.Module, name: str) -> tuple[list[tuple[str, nn.Module]], bool]:
    """The stages of a family that is one sequence of them, and whether they run NHWC; none for others."""
    if all(hasattr(model, f"layer{i}") for i in range(1, 5)):  # ResNet, ResNeXt, Wide ResNet
        stem = nn.Sequential(model.conv1, model.bn1, model.relu)
        stages = [("stem", stem), ("maxpool", model.maxpool)] + [
            (f"layer{i}", getattr(model, f"layer{i}")) for i in range(1, 5)
        ]
        return stages, False
    if isinstance(getattr(model, "features", None), nn.Sequential):
        stages = [(f"features_{i}", child) for i, child in enumerate(model.features)]
        return stages, name.startswith("swin")
    return [], False  # not one sequence of stages: a feature extractor (_extractor_backbone)


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
        shapes.append((snapped_stride(size / height), int(channels)))
    return shapes


def _output_depths(nodes: list[str]) -> dict[str, int]:
    """Each node's depth as a module output: a node that is the last one inside a module's scope
    (``inception3b.cat``, ``layer4.1.relu_1``) stands for that module's output, as shallow as the
    outermost module it ends; maps are taken from the shallowest, so a block's output is preferred
    to a branch inside the next block (MNASNet's expansion before its strided convolution)."""
    last_in_scope: dict[str, int] = {}
    for position, node in enumerate(nodes):
        parts = node.split(".")
        for end in range(1, len(parts)):
            last_in_scope[".".join(parts[:end])] = position
    depths = {}
    for position, node in enumerate(nodes):
        parts = node.split(".")
        ends = [end for end in range(1, len(parts)) if last_in_scope[".".join(parts[:end])] == position]
        depths[node] = min(ends) - 1 if ends else len(parts) - 1
    return depths


@torch.no_grad()
def _extractor_nodes(model: nn.Module, size: int = 224) -> tuple[dict[str, str], dict[str, int], dict[str, int]]:
    """{node: feature name}, channels and strides of the maps a classifier computes, from one
    forward pass of a blank image through every node of its eval graph."""
    from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

    training = model.training
    probe = create_feature_extractor(model.eval(), return_nodes=get_graph_node_names(model.eval())[1])
    found = probe(torch.zeros(1, 3, size, size))
    model.train(training)
    depth = _output_depths(list(found))
    best: dict[int, tuple[int, int, str, int]] = {}  # stride -> (depth, -position, node, channels)
    for position, (node, value) in enumerate(found.items()):
        if not (isinstance(value, torch.Tensor) and value.dim() == 4 and value.shape[0] == 1 and value.shape[-1] > 0):
            continue
        stride = snapped_stride(size / value.shape[-1])
        candidate = (depth[node], -position, node, int(value.shape[1]))
        if 2 <= stride <= 32 and (stride not in best or candidate[:2] <= best[stride][:2]):
            best[stride] = candidate
    strides = sorted(best)
    nodes = {best[s][2]: feature_name(s) for s in strides}
    return nodes, {feature_name(s): best[s][3] for s in strides}, {feature_name(s): s for s in strides}


def _extractor_backbone(model: nn.Module) -> Backbone:
    from torchvision.models.feature_extraction import create_feature_extractor

    nodes, channels, strides = _extractor_nodes(model)
    if "c5" not in channels:
        raise TransferdetError(f"no stride-32 feature map found (maps at strides {sorted(strides.values())})")

    def factory(chosen: dict[str, str]) -> nn.Module:
        # tracing switches the classifier's modules to train and eval mode and back to the top
        # module's mode; the modules are shared with the extractors already built: keep their modes
        modes = [(module, module.training) for module in model.modules()]
        extractor = create_feature_extractor(model, return_nodes=chosen)
        for module, training in modes:
            module.training = training
        return extractor

    backbone = ExtractorBackbone(factory, nodes, channels, strides, IMAGENET_MEAN, IMAGENET_STD)
    if runs_on_its_grid(backbone, 224 + 32, 224 + 64):
        return backbone

    def resized(chosen: dict[str, str]) -> nn.Module:  # a network that runs at 224 px only
        return ResizedInput(factory(chosen), (224, 224), strides)

    return ExtractorBackbone(resized, nodes, channels, strides, IMAGENET_MEAN, IMAGENET_STD)


def _backbone(model: nn.Module, name: str) -> Backbone:
    if is_torchvision_vit(model):
        return torchvision_vit_backbone(model)
    stages, nhwc = torchvision_stages(model, name)
    if not stages:
        try:
            return _extractor_backbone(model)
        except TransferdetError as error:
            raise TransferdetError(f"torchvision:{name}: {error}") from None
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


def _linear_head(model: nn.Module, channels: int | None) -> str | None:
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
    model = torchvision_model(spec)
    backbone = _backbone(model, spec.name)
    used = {id(t) for m in backbone.stages.values() for t in [*m.parameters(), *m.buffers()]}
    named = [*model.named_parameters(), *model.named_buffers()]
    target = {k: tuple(v.shape) for k, v in model.state_dict().items()}

    def assign(loaded: dict[str, torch.Tensor]) -> None:
        model.load_state_dict(loaded, strict=False)

    keys = [k for k, t in named if id(t) in used]
    if is_torchvision_vit(model):
        return Architecture(backbone, target, keys, assign, None, position_converter(model))
    return Architecture(backbone, target, keys, assign, _linear_head(model, backbone.channels.get("c5")))
