"""Detector sources: a whole trained detector named as a model spec's weights, read as data.

A ``transferdet train`` run folder (``ARCH@RUN_DIR``): its detector record (kind and structure),
its classes, the input normalisation it trained with, and its weights. torchvision's detection
weights (``torchvision:fasterrcnn_resnet50_fpn@FILE``): :mod:`~transferdet.models.torchvision_detectors`.
"""

from __future__ import annotations

from transferdet.errors import TransferdetError
from transferdet.models.detector_transfer import DetectorSource
from transferdet.models.specs import ModelSpec, require_trained_arch


def read_detector_source(spec: ModelSpec) -> DetectorSource | None:
    """The whole detector ``spec``'s weights name, or None where they are a backbone's."""
    from transferdet.models.torchvision_detectors import is_torchvision_detector, read_torchvision_detector

    if is_torchvision_detector(spec):
        if spec.weights == "random":
            raise TransferdetError(f"{spec}: a detector source needs its weights (@FILE, or @pretrained online)")
        return read_torchvision_detector(spec)
    if not spec.is_detector_run:
        return None
    from transferdet.runs import RunDir

    run = RunDir(spec.checkpoint)
    require_trained_arch(run, spec)
    record = run.manifest()["detector"]
    state = run.load_checkpoint()["model"]
    return DetectorSource(str(run.path), record, list(record.get("classes", [])) or None, state)


def source_kind(text: str) -> str | None:
    """The detector kind a detector source is (without reading its weights), or None for a backbone."""
    from transferdet.models.native_detectors import NATIVE
    from transferdet.models.specs import parse_spec
    from transferdet.models.torchvision_detectors import MAPPED, is_torchvision_detector
    from transferdet.runs import RunDir

    spec = parse_spec(text)
    if is_torchvision_detector(spec):
        return {**MAPPED, **NATIVE}.get(spec.name, (None,))[0]
    if spec.is_detector_run:
        return RunDir(spec.checkpoint).manifest()["detector"]["kind"]
    return None
