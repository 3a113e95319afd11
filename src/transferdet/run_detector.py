"""A training run's detector, rebuilt from its folder: the architecture its manifest names, the
detector its record describes, the weights of its checkpoint. Above both :mod:`transferdet.runs`
(the folder's files) and :mod:`transferdet.models` (what builds the modules), which import
neither this nor each other's upper parts."""

from __future__ import annotations

import torch

from transferdet.models.backbones import build_backbone
from transferdet.models.detectors import DetectorConfig, build_detector
from transferdet.models.specs import ModelSpec, parse_spec, trained_arch
from transferdet.models.torchvision_detectors import body_arch
from transferdet.runs import RunDir


def load_detector(run: RunDir, device: str = "cpu") -> tuple[torch.nn.Module, list[str]]:
    """The run's detector with its checkpointed weights, in eval mode, and its classes."""
    record = run.manifest()["detector"]
    config = DetectorConfig.from_record(record)
    state = run.load_checkpoint(device)["model"]
    body = None if config.builder else build_backbone(parse_spec(body_arch(trained_arch(run), state)))
    if body is not None and "mean" in record:  # the normalisation it trained with (older runs: the default)
        body.mean, body.std = tuple(record["mean"]), tuple(record["std"])
    model = build_detector(body, config)
    model.load_state_dict(state)
    return model.to(device).eval(), list(record["classes"])


def source_detector(spec: ModelSpec) -> torch.nn.Module:
    """The whole detector a detector file holds (torchvision's layout), rebuilt with its own classes
    and structure, in eval mode: what ranking reads its body and taps from."""
    from transferdet.models.detector_sources import read_detector_source
    from transferdet.models.detector_transfer import transfer_state

    source = read_detector_source(spec)
    config = DetectorConfig.from_record(source.record)
    model = build_detector(None if config.builder else build_backbone(source.body), config)
    transfer_state(model, source.state, source.origin, (source.classes or [], source.classes))
    return model.eval()


def mapped_body(spec: ModelSpec) -> ModelSpec:
    """The backbone a mapped torchvision detector source (a file, or a run trained from one) is built
    over, told from its weights (R50, or R101 from detectron2's or MMDetection's zoo), random init:
    what its parameters are counted on."""
    from transferdet.models.detector_sources import read_detector_source

    if spec.is_detector_run:
        return parse_spec(f"{body_arch(spec.arch, RunDir(spec.checkpoint).load_checkpoint('cpu')['model'])}@random")
    return parse_spec(read_detector_source(spec).body)
