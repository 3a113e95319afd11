"""Backbones with their weights: ``ARCH@WEIGHTS`` -> a :class:`~transferdet.models.backbone.Backbone`.

The architecture comes from its library's adapter (timm or torchvision); the checkpoint is read
once, its layout detected and its tensors matched onto the architecture's names
(:mod:`~transferdet.models.checkpoints`); the input normalisation it states (a sidecar, or its
own entries: :mod:`~transferdet.models.normalisation`) replaces the architecture's default, and
one stated with the model (:mod:`~transferdet.models.model_card`) replaces both.
Where the checkpoint holds the weights of a linear classifier on pooled c5 (any number of
classes), the backbone keeps it as ``classifier`` (for LEEP and NCE).
"""

from __future__ import annotations

import fnmatch
import re

import torch
from torch import nn

from transferdet.errors import TransferdetError
from transferdet.models.adapters import build_architecture
from transferdet.models.architecture import Architecture
from transferdet.models.backbone import Backbone
from transferdet.models.checkpoints import Checkpoint, LoadReport, match_tensors, read_checkpoint, without_prefix
from transferdet.models.detectron2_names import to_resnet_names
from transferdet.models.normalisation import stated_normalisation
from transferdet.models.specs import ModelSpec, parse_spec, require_trained_arch


def _describe(checkpoint: Checkpoint) -> str:
    parts = [checkpoint.kind]
    if checkpoint.wrappers:
        parts.append("wrapped in " + " > ".join(repr(w) for w in checkpoint.wrappers))
    return ", ".join(parts)


def _match(
    spec: ModelSpec, architecture: Architecture, strict: bool, checkpoint: Checkpoint | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], LoadReport]:
    """The checkpoint's tensors as stored (detectron2 names mapped to ResNet's), those matched onto
    the architecture's names, and the report of the match; a strict mismatch is an error."""
    checkpoint = checkpoint or read_checkpoint(spec.checkpoint)
    tensors = to_resnet_names(checkpoint) if checkpoint.kind == "detectron2" else checkpoint.tensors
    describe = _describe(checkpoint)
    if architecture.convert is not None:  # a plain ViT's layouts, by timm's own checkpoint filter
        tensors, prefix = without_prefix(tensors, architecture.target, architecture.backbone_keys)
        tensors = architecture.convert(tensors)
        describe += (f", prefix {prefix!r}" if prefix else "") + ", converted by timm's checkpoint filter"
    loaded, report = match_tensors(tensors, architecture.target, architecture.backbone_keys, describe)
    if strict and not report.clean:
        raise TransferdetError(
            f"{spec.checkpoint}: does not fit {spec.arch} ({report.layout}): {report.problem()}; "
            "pass --non-strict to load what matches"
        )
    return tensors, loaded, report


def _linear_classifier(sources: list[dict[str, torch.Tensor]], name: str, channels: int) -> nn.Linear | None:
    """The linear classifier ``name`` from the first of ``sources`` that holds it, whatever its
    number of classes."""
    for tensors in sources:
        weight, bias = tensors.get(f"{name}.weight"), tensors.get(f"{name}.bias")
        if weight is None or bias is None or weight.ndim != 2 or weight.shape[1] != channels:
            continue
        linear = torch.nn.utils.skip_init(nn.Linear, weight.shape[1], weight.shape[0])  # no draw from the global RNG
        with torch.no_grad():
            linear.weight.copy_(weight.float())
            linear.bias.copy_(bias.float())
        return linear.eval()
    return None


def matched_weights(spec: ModelSpec | str, strict: bool = True) -> tuple[dict[str, torch.Tensor], LoadReport]:
    """A checkpoint's tensors under its architecture's classification-model names (for export)."""
    spec = parse_spec(spec) if isinstance(spec, str) else spec
    if spec.checkpoint is None:
        raise TransferdetError(f"{spec}: no checkpoint file to read")
    _, loaded, report = _match(spec, build_architecture(spec), strict)
    return loaded, report


def _load_run_body(spec: ModelSpec, backbone: Backbone) -> None:
    """The body of the detector a ``transferdet train`` run folder holds, with the input
    normalisation it was trained with (a detector pretrained elsewhere as a source)."""
    from transferdet.runs import RunDir

    run = RunDir(spec.checkpoint)
    require_trained_arch(run, spec)
    prefix = "backbone.body."
    state = {k[len(prefix) :]: v for k, v in run.load_checkpoint()["model"].items() if k.startswith(prefix)}
    missing, unexpected = backbone.load_state_dict(state, strict=False)
    # frozen batch norms keep no batch count: the only keys a trained body may lack
    problems = [k for k in missing if not k.endswith("num_batches_tracked")] + list(unexpected)
    if problems:
        raise TransferdetError(f"{run.checkpoint_file}: its detector's body does not fit {spec.arch} ({problems[0]})")
    record = run.manifest()["detector"]
    if "mean" in record:
        backbone.mean, backbone.std = tuple(record["mean"]), tuple(record["std"])
        backbone.normalisation_source = f"{run.path} (the run's manifest)"


def build_backbone(spec: ModelSpec | str, strict: bool = True) -> Backbone:
    """The backbone ``spec`` names, with its weights loaded (strictly, unless ``strict=False``);
    WEIGHTS may be a training run's folder, whose detector's body it then is."""
    spec = parse_spec(spec) if isinstance(spec, str) else spec
    architecture = build_architecture(spec)
    backbone = architecture.backbone
    if spec.is_detector_run:
        _load_run_body(spec, backbone)
    elif spec.checkpoint is not None:
        checkpoint = read_checkpoint(spec.checkpoint)
        tensors, loaded, backbone.load_report = _match(spec, architecture, strict, checkpoint)
        architecture.assign(loaded)
        if architecture.head is not None:
            head = _linear_classifier([loaded, tensors], architecture.head, backbone.channels["c5"])
            backbone.__dict__["classifier"] = head
        stated = stated_normalisation(spec.checkpoint, checkpoint.notes)
        if stated is not None:
            backbone.mean, backbone.std, backbone.normalisation_source = stated.mean, stated.std, stated.source
    if spec.mean is not None and spec.std is not None:  # stated with the model: comes first
        backbone.mean, backbone.std = spec.mean, spec.std
        backbone.normalisation_source = "the model's entry (models file or bench config)"
    backbone.spec = spec
    return backbone


def list_architectures(pattern: str | None = None) -> list[str]:
    """``timm:NAME`` and ``torchvision:NAME`` architectures matching a shell-style ``pattern``."""
    import timm
    import torchvision

    names = [f"timm:{n}" for n in timm.list_models()]
    names += [f"torchvision:{n}" for n in torchvision.models.list_models(module=torchvision.models)]
    if pattern:
        regex = re.compile(fnmatch.translate(pattern if any(c in pattern for c in "*?[") else f"*{pattern}*"))
        names = [n for n in names if regex.match(n)]
    return names
