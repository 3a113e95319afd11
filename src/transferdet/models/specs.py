"""Model specifiers ``ARCH[@WEIGHTS]`` (DESIGN.md): ``timm:NAME`` or ``torchvision:NAME``, weights a
checkpoint path, ``random``, or ``pretrained`` (the library's own download; needs internet).

A spec may also carry what a model card states beside the weights (a models file's or bench
config's entry, :mod:`~transferdet.models.model_card`): the input ``mean``/``std`` the weights
expect and their ImageNet ``top1``. They are not part of the spec's text."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from transferdet.errors import TransferdetError

if TYPE_CHECKING:
    from transferdet.runs import RunDir

LIBRARIES = ("timm", "torchvision")


@dataclass(frozen=True)
class ModelSpec:
    library: str
    name: str
    weights: str = "random"
    mean: tuple[float, ...] | None = None  # stated input normalisation (None: the checkpoint's or the default)
    std: tuple[float, ...] | None = None
    top1: float | None = None  # stated ImageNet-1k top-1 accuracy (%), a static baseline

    @property
    def arch(self) -> str:
        return f"{self.library}:{self.name}"

    @property
    def checkpoint(self) -> Path | None:
        return None if self.weights in ("random", "pretrained") else Path(self.weights)

    @property
    def is_detector_run(self) -> bool:
        """WEIGHTS is a ``transferdet train`` run folder: a whole trained detector, whose FPN levels
        and box head can be ranked too."""
        from transferdet.runs import RunDir

        folder = self.checkpoint
        return folder is not None and RunDir.is_run(folder)

    def __str__(self) -> str:
        return f"{self.arch}@{self.weights}"


def split_spec(text: str) -> tuple[str, str | None]:
    """``"ARCH@WEIGHTS"`` -> ``("ARCH", "WEIGHTS")``; ``"ARCH"`` -> ``("ARCH", None)``."""
    arch, sep, weights = text.partition("@")
    return arch, (weights if sep else None)


def trained_arch(run: RunDir) -> str:
    """The architecture (``ARCH``, no weights) a training run trained."""
    return split_spec(run.backbone_spec())[0]


def require_trained_arch(run: RunDir, spec: ModelSpec) -> None:
    """An error naming ``spec`` unless ``run`` trained its architecture (a source ``ARCH@RUN_DIR``)."""
    trained = trained_arch(run)
    if trained != spec.arch:
        raise TransferdetError(f"{spec}: the run in {run.path} trained {trained}, not {spec.arch}")


def parse_spec(text: str | ModelSpec) -> ModelSpec:
    """``"timm:resnet18@random"`` -> ``ModelSpec("timm", "resnet18", "random")``; weights default to
    ``random``. A path that does not exist is an error here, before any model is built. A
    ``ModelSpec`` is returned as it is."""
    if isinstance(text, ModelSpec):
        return text
    arch, weights = split_spec(text)
    library, sep, name = arch.partition(":")
    if not sep or library not in LIBRARIES or not name:
        raise TransferdetError(
            f"model spec {text!r}: expected timm:NAME[@WEIGHTS] or torchvision:NAME[@WEIGHTS] "
            "(WEIGHTS = a checkpoint path, random or pretrained)"
        )
    weights = weights or "random"
    spec = ModelSpec(library, name, weights)
    if spec.checkpoint is not None and spec.checkpoint.is_dir():
        if not spec.is_detector_run:
            from transferdet.runs import RunDir

            raise TransferdetError(
                f"{spec.checkpoint}: a folder, but not a transferdet training run ({RunDir.CONTENT})"
            )
    elif spec.checkpoint is not None and not spec.checkpoint.is_file():
        from transferdet.safe_load import checked_file

        if spec.checkpoint.is_symlink():
            checked_file(spec.checkpoint, "checkpoint file")  # names a link loop
        raise TransferdetError(f"{spec.checkpoint}: checkpoint file does not exist (in model spec {text!r})")
    return spec
