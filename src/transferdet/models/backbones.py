"""Multi-scale backbones from timm or torchvision, with weights from any checkpoint.

Every backbone becomes a :class:`Backbone`: an ordered list of stages run one after the other,
some of which emit a feature map named by its stride (``c1``..``c5`` for strides 2..32). Running
stages in order (rather than a library's own feature wrapper) lets a detector cut the network
anywhere, e.g. the C4 detector that uses the last stage as its RoI head.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from transferdet.errors import TransferdetError
from transferdet.models.checkpoints import Checkpoint, LoadReport, match_tensors, read_checkpoint, to_resnet_names
from transferdet.models.specs import ModelSpec, parse_spec

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
STRIDE_NAMES = {2: "c1", 4: "c2", 8: "c3", 16: "c4", 32: "c5"}
TORCHVISION_HEADS = ("fc.", "classifier.", "head.", "heads.")


def feature_name(stride: int) -> str:
    return STRIDE_NAMES.get(stride, f"stride{stride}")


class Backbone(nn.Module):
    """Stages run in order; ``outputs`` maps a stage name to the feature name it emits.

    ``forward`` returns an ``OrderedDict`` of NCHW feature maps. ``channels`` and ``strides`` are
    per feature name; ``mean``/``std`` are the input normalisation the weights expect (RGB, [0, 1]).
    """

    def __init__(
        self,
        stages: list[tuple[str, nn.Module]],
        outputs: dict[str, str],
        channels: dict[str, int],
        strides: dict[str, int],
        nhwc: bool = False,
        mean: tuple[float, ...] = IMAGENET_MEAN,
        std: tuple[float, ...] = IMAGENET_STD,
    ) -> None:
        super().__init__()
        self.stages = nn.ModuleDict(OrderedDict(stages))
        self.outputs = dict(outputs)
        self.channels = dict(channels)
        self.strides = dict(strides)
        self.nhwc = nhwc
        self.mean, self.std = tuple(mean), tuple(std)
        self.spec: ModelSpec | None = None
        self.load_report: LoadReport | None = None
        # the checkpoint's own classifier on average-pooled c5 features, when it has a plain linear
        # one and the checkpoint provided its weights (used for LEEP/NCE); not part of the module tree
        self.__dict__["classifier"] = None

    @property
    def feature_names(self) -> list[str]:
        return list(self.outputs.values())

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        features: OrderedDict[str, torch.Tensor] = OrderedDict()
        for name, stage in self.stages.items():
            x = stage(x)
            if name in self.outputs:
                features[self.outputs[name]] = x.permute(0, 3, 1, 2) if self.nhwc else x
                if len(features) == len(self.outputs):
                    break
        return features

    def stage_index(self, feature: str) -> int:
        names = list(self.stages)
        for stage, out in self.outputs.items():
            if out == feature:
                return names.index(stage)
        raise TransferdetError(f"backbone has no feature {feature!r} (it has {', '.join(self.feature_names)})")

    def truncated(self, last: str) -> Backbone:
        """A backbone sharing this one's stages, stopping after feature ``last``."""
        end = self.stage_index(last) + 1
        stages = list(self.stages.items())[:end]
        kept = {s: o for s, o in self.outputs.items() if s in dict(stages)}
        trunk = Backbone(
            stages,
            kept,
            {o: self.channels[o] for o in kept.values()},
            {o: self.strides[o] for o in kept.values()},
            self.nhwc,
            self.mean,
            self.std,
        )
        trunk.spec, trunk.load_report = self.spec, self.load_report
        return trunk

    def stages_between(self, after: str, upto: str) -> list[nn.Module]:
        """The stages that turn feature ``after`` into feature ``upto``."""
        modules = list(self.stages.values())
        return modules[self.stage_index(after) + 1 : self.stage_index(upto) + 1]


# --- timm -----------------------------------------------------------------------------------------


def _normalised(key: str) -> str:
    """timm's feature wrappers rename ``stages.0`` to ``stages_0``: compare keys modulo that."""
    return key.replace("_", ".")


def _timm_stages(features: nn.Module) -> tuple[list[tuple[str, nn.Module]], dict[str, str]]:
    info = features.feature_info
    reductions = info.reduction()
    if hasattr(features, "return_layers") and isinstance(features, nn.ModuleDict):
        stages = list(features.items())
        outputs = {name: feature_name(reductions[int(i)]) for name, i in features.return_layers.items()}
        return stages, outputs
    if hasattr(features, "_stage_out_idx") and hasattr(features, "blocks"):
        stem = nn.Sequential(features.conv_stem, features.bn1)
        stages = [("stem", stem)] + [(f"blocks_{i}", block) for i, block in enumerate(features.blocks)]
        names = [name for name, _ in stages]
        outputs = {names[position]: feature_name(reductions[i]) for position, i in features._stage_out_idx.items()}
        return stages, outputs
    raise TransferdetError(f"timm feature extractor {type(features).__name__} is not supported yet")


def _dedupe_outputs(outputs: dict[str, str], order: list[str]) -> dict[str, str]:
    """Keep, for each feature name, the last stage that emits it."""
    last: dict[str, str] = {}
    for stage in order:
        if stage in outputs:
            last[outputs[stage]] = stage
    return {stage: feature for feature, stage in last.items()}


def _build_timm(spec: ModelSpec) -> tuple[Backbone, nn.Module, dict[str, str], dict[str, tuple[int, ...]]]:
    """The backbone, timm's feature wrapper it was cut from (for loading weights), the wrapper's
    key -> classification-model key mapping, and the classification model's key shapes."""
    import timm

    try:
        features = timm.create_model(spec.name, pretrained=spec.weights == "pretrained", features_only=True)
    except RuntimeError as error:
        raise TransferdetError(f"{spec.arch}: {error}") from None
    stages, outputs = _timm_stages(features)
    outputs = _dedupe_outputs(outputs, [n for n, _ in stages])
    info = features.feature_info
    by_stride = {feature_name(r): c for r, c in zip(info.reduction(), info.channels(), strict=True)}
    strides = {feature_name(r): r for r in info.reduction()}
    cfg = getattr(features, "pretrained_cfg", {}) or {}
    nhwc = str(getattr(features, "output_fmt", "NCHW")).upper().endswith("NHWC")
    backbone = Backbone(
        stages,
        outputs,
        {o: by_stride[o] for o in outputs.values()},
        {o: strides[o] for o in outputs.values()},
        nhwc=nhwc,
        mean=tuple(cfg.get("mean", IMAGENET_MEAN)),
        std=tuple(cfg.get("std", IMAGENET_STD)),
    )
    # checkpoints use the classification model's names: map them onto the feature wrapper's
    with torch.device("meta"):
        full = timm.create_model(spec.name, pretrained=False)
    full_shapes = {k: tuple(v.shape) for k, v in full.state_dict().items()}
    backbone.__dict__["head_name"] = _timm_linear_head(full, backbone)
    by_norm = {_normalised(k): k for k in full_shapes}
    feature_keys = list(features.state_dict())
    to_full = {}
    for key in feature_keys:
        if _normalised(key) not in by_norm:
            raise TransferdetError(f"{spec.arch}: cannot relate feature key {key} to the model's names")
        to_full[key] = by_norm[_normalised(key)]
    return backbone, features, to_full, full_shapes


def _timm_linear_head(full: nn.Module, backbone: Backbone) -> str | None:
    """The name of a timm model's classifier when it is one linear layer on average-pooled c5
    (ResNets, ConvNeXts, ...; not MobileNetV3, whose head has a convolution first)."""
    name = (getattr(full, "pretrained_cfg", None) or {}).get("classifier")
    classifier = full.get_classifier() if hasattr(full, "get_classifier") else None
    channels = backbone.channels.get("c5")
    if not isinstance(name, str) or not isinstance(classifier, nn.Linear) or classifier.in_features != channels:
        return None
    head = getattr(full, "head", None)
    if head is not None and not isinstance(head, nn.Linear) and any(isinstance(m, nn.Conv2d) for m in head.modules()):
        return None
    return name


def _checkpoint_head(tensors: dict[str, torch.Tensor], name: str, channels: int) -> nn.Linear | None:
    """A linear classifier ``name`` from checkpoint tensors, whatever its number of classes."""
    weight, bias = tensors.get(f"{name}.weight"), tensors.get(f"{name}.bias")
    if weight is None or bias is None or weight.ndim != 2 or weight.shape[1] != channels:
        return None
    linear = torch.nn.utils.skip_init(nn.Linear, weight.shape[1], weight.shape[0])  # no draw from the global RNG
    with torch.no_grad():
        linear.weight.copy_(weight.float())
        linear.bias.copy_(bias.float())
    return linear.eval()


# --- torchvision ----------------------------------------------------------------------------------


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


def _build_torchvision(spec: ModelSpec) -> tuple[Backbone, nn.Module]:
    model = _torchvision_model(spec)
    stages, nhwc = _torchvision_stages(model, spec.name)
    shapes = _measure(stages, nhwc)
    outputs: dict[str, str] = {}
    for (stage, _), (stride, _) in zip(stages, shapes, strict=True):
        if stride >= 2:
            outputs[stage] = feature_name(stride)
    outputs = _dedupe_outputs(outputs, [n for n, _ in stages])
    channels = {feature_name(s): c for s, c in shapes}
    strides = {feature_name(s): s for s, _ in shapes}
    last = max(list(dict(stages)).index(s) for s in outputs)
    stages = stages[: last + 1]
    backbone = Backbone(
        stages,
        outputs,
        {o: channels[o] for o in outputs.values()},
        {o: strides[o] for o in outputs.values()},
        nhwc=nhwc,
    )
    return backbone, model


# --- loading --------------------------------------------------------------------------------------


def _describe(checkpoint: Checkpoint) -> str:
    parts = [checkpoint.kind]
    if checkpoint.wrappers:
        parts.append("wrapped in " + " > ".join(repr(w) for w in checkpoint.wrappers))
    return ", ".join(parts)


def _checkpoint_tensors(path) -> tuple[dict[str, torch.Tensor], str]:
    checkpoint = read_checkpoint(path)
    tensors = to_resnet_names(checkpoint) if checkpoint.kind == "detectron2" else checkpoint.tensors
    return tensors, _describe(checkpoint)


def _load(
    spec: ModelSpec,
    target: dict[str, tuple[int, ...]],
    backbone_keys: list[str],
    strict: bool,
) -> tuple[dict[str, torch.Tensor], LoadReport]:
    tensors, layout = _checkpoint_tensors(spec.checkpoint)
    loaded, report = match_tensors(tensors, target, backbone_keys, layout)
    if strict and not report.clean:
        raise TransferdetError(
            f"{spec.checkpoint}: does not fit {spec.arch} ({report.layout}): {report.problem()}; "
            "pass --non-strict to load what matches"
        )
    return loaded, report


@dataclass
class Architecture:
    """A built backbone and how to give it weights named as in the classification model.

    ``target`` maps the classification model's keys to shapes (what checkpoints are matched
    against); ``backbone_keys`` are the ones the backbone uses; ``assign`` puts matched tensors in.
    """

    backbone: Backbone
    target: dict[str, tuple[int, ...]]
    backbone_keys: list[str]
    assign: Callable[[dict[str, torch.Tensor]], None]
    head: tuple[str, nn.Linear] | None = None  # (key prefix, linear classifier on pooled c5)


def build_architecture(spec: ModelSpec) -> Architecture:
    if spec.library == "timm":
        backbone, features, to_full, full_shapes = _build_timm(spec)

        def assign_timm(loaded: dict[str, torch.Tensor]) -> None:
            features.load_state_dict({fk: loaded[full] for fk, full in to_full.items() if full in loaded}, strict=False)

        return Architecture(backbone, full_shapes, list(to_full.values()), assign_timm)
    backbone, model = _build_torchvision(spec)
    used = {id(t) for m in backbone.stages.values() for t in [*m.parameters(), *m.buffers()]}
    named = [*model.named_parameters(), *model.named_buffers()]
    target = {k: tuple(v.shape) for k, v in model.state_dict().items()}

    def assign_torchvision(loaded: dict[str, torch.Tensor]) -> None:
        model.load_state_dict(loaded, strict=False)

    keys = [k for k, t in named if id(t) in used]
    return Architecture(backbone, target, keys, assign_torchvision, _linear_head(model, backbone.channels["c5"]))


def _linear_head(model: nn.Module, channels: int) -> tuple[str, nn.Linear] | None:
    """A torchvision classifier that is one linear layer (after dropout) on pooled c5 features."""
    if isinstance(getattr(model, "fc", None), nn.Linear) and model.fc.in_features == channels:
        return "fc.", model.fc
    classifier = getattr(model, "classifier", None)
    if isinstance(classifier, nn.Sequential) and all(isinstance(m, nn.Dropout | nn.Linear) for m in classifier):
        linears = [(i, m) for i, m in enumerate(classifier) if isinstance(m, nn.Linear)]
        if len(linears) == 1 and linears[0][1].in_features == channels:
            return f"classifier.{linears[0][0]}.", linears[0][1]
    return None


def matched_weights(spec: ModelSpec | str, strict: bool = True) -> tuple[dict[str, torch.Tensor], LoadReport]:
    """A checkpoint's tensors under its architecture's classification-model names (for export)."""
    spec = parse_spec(spec) if isinstance(spec, str) else spec
    if spec.checkpoint is None:
        raise TransferdetError(f"{spec}: no checkpoint file to read")
    architecture = build_architecture(spec)
    return _load(spec, architecture.target, architecture.backbone_keys, strict)


def build_backbone(spec: ModelSpec | str, strict: bool = True) -> Backbone:
    """The backbone ``spec`` names, with its weights loaded (strictly, unless ``strict=False``)."""
    spec = parse_spec(spec) if isinstance(spec, str) else spec
    architecture = build_architecture(spec)
    backbone = architecture.backbone
    if spec.checkpoint is not None:
        loaded, backbone.load_report = _load(spec, architecture.target, architecture.backbone_keys, strict)
        architecture.assign(loaded)
        if architecture.head is not None and all(f"{architecture.head[0]}{p}" in loaded for p in ("weight", "bias")):
            backbone.__dict__["classifier"] = architecture.head[1].eval()
        elif backbone.__dict__.get("head_name"):  # a timm classifier, with however many classes it was trained for
            tensors, _ = _checkpoint_tensors(spec.checkpoint)
            backbone.__dict__["classifier"] = _checkpoint_head(tensors, backbone.head_name, backbone.channels["c5"])
    backbone.spec = spec
    return backbone


def list_architectures(pattern: str | None = None) -> list[str]:
    """``timm:NAME`` and ``torchvision:NAME`` architectures matching a shell-style ``pattern``."""
    import fnmatch

    import timm
    import torchvision

    names = [f"timm:{n}" for n in timm.list_models()]
    names += [f"torchvision:{n}" for n in torchvision.models.list_models(module=torchvision.models)]
    if pattern:
        regex = re.compile(fnmatch.translate(pattern if any(c in pattern for c in "*?[") else f"*{pattern}*"))
        names = [n for n in names if regex.match(n)]
    return names


# --- norm policy and freezing ---------------------------------------------------------------------

NORM_POLICIES = ("frozen_bn", "bn", "syncbn", "gn")


def _replace_bn(module: nn.Module, make: callable) -> nn.Module:  # type: ignore[valid-type]
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, make(child))
        else:
            _replace_bn(child, make)
    return module


def _group_norm(bn: nn.BatchNorm2d) -> nn.Module:
    channels = bn.num_features
    groups = next(g for g in (32, 16, 8, 4, 2, 1) if channels % g == 0)
    norm = nn.GroupNorm(groups, channels, eps=bn.eps, affine=True)
    if bn.affine:
        with torch.no_grad():
            norm.weight.copy_(bn.weight)
            norm.bias.copy_(bn.bias)
    extras = [getattr(bn, a) for a in ("drop", "act") if isinstance(getattr(bn, a, None), nn.Module)]
    return nn.Sequential(norm, *extras) if extras else norm


def apply_norm_policy(module: nn.Module, policy: str) -> nn.Module:
    """``frozen_bn``: BatchNorm with fixed statistics and affine terms; ``bn``: trained BatchNorm;
    ``syncbn``: BatchNorm synchronised across DDP processes; ``gn``: GroupNorm (pretrained affine
    terms kept). timm's norm+activation layers keep their activation."""
    if policy == "bn":
        return module
    if policy == "frozen_bn":
        from timm.layers import freeze_batch_norm_2d

        return freeze_batch_norm_2d(module)
    if policy == "syncbn":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    if policy == "gn":
        return _replace_bn(module, _group_norm)
    raise TransferdetError(f"unknown norm policy {policy!r} (choose from {', '.join(NORM_POLICIES)})")


def freeze_stages(backbone: Backbone, freeze_at: int) -> list[str]:
    """Freeze every stage up to and including the one that emits ``c{freeze_at}`` (0: nothing).
    Returns the frozen stage names."""
    if freeze_at <= 0:
        return []
    names = list(backbone.stages)
    emitted = {o: names.index(s) for s, o in backbone.outputs.items()}
    wanted = f"c{freeze_at}"
    if wanted in emitted:
        end = emitted[wanted] + 1
    else:  # no such feature (e.g. no stride-2 map): freeze what comes before the next one
        later = [i for o, i in emitted.items() if o.startswith("c") and int(o[1:]) > freeze_at]
        end = min(later) if later else len(names)
    for name in names[:end]:
        for parameter in backbone.stages[name].parameters():
            parameter.requires_grad_(False)
    return names[:end]
