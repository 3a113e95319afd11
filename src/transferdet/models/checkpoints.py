"""Reading checkpoints from anywhere and matching their keys onto an architecture.

A checkpoint file may be a plain state dict, or wrap it (``state_dict``, ``model``, ``model_ema``,
``teacher``, ``student``, ``module`` ...), prefix its keys (MoCo v1/v2 ``module.encoder_q.``,
MoCo v3 ``module.base_encoder.``, PyContrast ``module.encoder.`` / EMA ``encoder.``, DenseCL/mmcv
``backbone.``, DINO ``backbone.`` inside ``teacher``), be a safetensors file, or a detectron2
``.pkl`` (its names mapped in :mod:`~transferdet.models.detectron2_names`). Matching picks the prefix
that maps most keys onto the architecture's names with equal shapes; when another library named
the same architecture differently (torchvision vs timm), keys are paired in order by shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from transferdet.errors import TransferdetError
from transferdet.safe_load import load_pickle, load_safetensors, load_torch, warn_non_finite

WRAPPER_KEYS = ("state_dict", "model", "model_ema", "teacher", "student", "module", "network", "net")
KNOWN_PREFIXES = (
    "module.encoder_q.",
    "encoder_q.",
    "module.base_encoder.",
    "base_encoder.",
    "module.encoder.",
    "encoder.",
    "module.backbone.",
    "backbone.bottom_up.",
    "backbone.",
    "module.",
    "model.",
    "",
)
BOOKKEEPING = ("num_batches_tracked",)
TENSOR_SUFFIXES = (".weight", ".bias", ".running_mean", ".running_var", "_embed", ".scale")


@dataclass
class Checkpoint:
    """Tensors of a checkpoint file, how they were wrapped, and notes the file carries."""

    tensors: dict[str, torch.Tensor]
    kind: str  # torch | safetensors | detectron2
    wrappers: list[str] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)


def _is_state_dict(value: Any) -> bool:
    return (
        isinstance(value, Mapping)
        and bool(value)
        and all(isinstance(v, torch.Tensor | np.ndarray) for v in value.values())
    )


def _no_stray_values(content: Mapping, path: Path, wrappers: list[str]) -> None:
    """A weight's name holding something else than a tensor is an error naming it."""
    for key, value in content.items():
        if str(key).endswith(TENSOR_SUFFIXES) and not isinstance(value, torch.Tensor | np.ndarray):
            where = ".".join([*wrappers, str(key)])
            raise TransferdetError(f"{path}: {where}: a {type(value).__name__} where a tensor was expected")


def _unwrap(content: Any, path: Path) -> tuple[dict[str, Any], list[str]]:
    wrappers: list[str] = []
    while not _is_state_dict(content):
        if not isinstance(content, Mapping):
            raise TransferdetError(f"{path}: not a checkpoint (no state dict of tensors found)")
        inner = next((k for k in WRAPPER_KEYS if isinstance(content.get(k), Mapping) and content[k]), None)
        if inner is None:
            tensors = {k: v for k, v in content.items() if isinstance(v, torch.Tensor | np.ndarray)}
            _no_stray_values(content, path, wrappers)
            if tensors:
                return tensors, wrappers  # a state dict with a few non-tensor entries
            keys = ", ".join(map(str, list(content)[:8]))
            raise TransferdetError(f"{path}: no state dict found (top-level keys: {keys})")
        wrappers.append(inner)
        content = content[inner]
    return dict(content), wrappers


def read_checkpoint(path: Path) -> Checkpoint:
    """Load a checkpoint file into tensors without building any model, as data only
    (:mod:`~transferdet.safe_load`); NaN or Inf weights are a warning naming them."""
    checkpoint = _read(path)
    warn_non_finite(checkpoint.tensors, path)
    return checkpoint


def _read(path: Path) -> Checkpoint:
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        return Checkpoint(load_safetensors(path), "safetensors")
    if suffix == ".pkl":
        content = load_pickle(path)
        notes = {k: v for k, v in content.items() if k != "model"} if isinstance(content, dict) else {}
        tensors, wrappers = _unwrap(content, path)
        converted = {k: torch.as_tensor(np.asarray(v)) for k, v in tensors.items()}
        return Checkpoint(converted, "detectron2", wrappers, notes)
    content = load_torch(path)
    tensors, wrappers = _unwrap(content, path)
    # a dict checkpoint may state its input normalisation next to its weights (and MMDetection its classes)
    notes = {k: content[k] for k in ("mean", "std", "meta") if isinstance(content, Mapping) and k in content}
    return Checkpoint({k: torch.as_tensor(v) for k, v in tensors.items()}, "torch", wrappers, notes)


@dataclass
class LoadReport:
    """What a checkpoint gave an architecture: per key, matched, missing, or left over."""

    layout: str
    matched: list[str]
    missing: list[str]
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]]
    unused: list[str]

    @property
    def clean(self) -> bool:
        return not self.missing and not self.mismatched

    def problem(self) -> str:
        parts = []
        if self.missing:
            parts.append(
                f"{len(self.missing)} backbone weight(s) not in the checkpoint: {', '.join(self.missing[:12])}"
            )
        if self.mismatched:
            shown = ", ".join(f"{k} {tuple(a)} vs {tuple(b)}" for k, a, b in self.mismatched[:6])
            parts.append(f"{len(self.mismatched)} with another shape: {shown}")
        if self.unused:
            parts.append(f"unused in the file: {', '.join(self.unused[:12])}")
        return "; ".join(parts)


def _is_bookkeeping(key: str) -> bool:
    return key.endswith(BOOKKEEPING)


def _candidate_prefixes(keys: list[str]) -> list[str]:
    found = list(KNOWN_PREFIXES)
    for key in keys:
        parts = key.split(".")
        for depth in (1, 2, 3):
            if len(parts) > depth:
                prefix = ".".join(parts[:depth]) + "."
                if prefix not in found:
                    found.append(prefix)
    return found


def _by_prefix(
    tensors: Mapping[str, torch.Tensor], target: Mapping[str, tuple[int, ...]], backbone: set[str]
) -> tuple[str, int]:
    """The prefix under which most *backbone* keys match in shape; ties go to the known prefixes'
    order (so MoCo's query encoder wins over its momentum encoder, whatever their heads)."""
    best, best_score = "", -1
    for prefix in _candidate_prefixes(list(tensors)):
        score = sum(
            1
            for key, value in tensors.items()
            if key.startswith(prefix)
            and key[len(prefix) :] in backbone
            and tuple(target[key[len(prefix) :]]) == tuple(value.shape)
        )
        if score > best_score:
            best, best_score = prefix, score
    return best, best_score


def without_prefix(
    tensors: Mapping[str, torch.Tensor], target: Mapping[str, tuple[int, ...]], backbone_keys: list[str]
) -> tuple[dict[str, torch.Tensor], str]:
    """The tensors under the prefix most backbone keys match by (taken off), and that prefix."""
    prefix, _ = _by_prefix(tensors, target, set(backbone_keys))
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}, prefix


def _by_order(
    tensors: Mapping[str, torch.Tensor], target: Mapping[str, tuple[int, ...]], backbone: list[str]
) -> dict[str, str] | None:
    """Pair keys in order when shapes agree one for one (same architecture, other names)."""
    source = [k for k in tensors if not _is_bookkeeping(k)]
    wanted = [k for k in target if not _is_bookkeeping(k)]
    if len(source) < len([k for k in backbone if not _is_bookkeeping(k)]):
        return None
    pairs = dict(zip(wanted, source, strict=False))
    if any(tuple(tensors[pairs[k]].shape) != tuple(target[k]) for k in backbone if k in pairs):
        return None
    return pairs


def match_tensors(
    tensors: Mapping[str, torch.Tensor],
    target: Mapping[str, tuple[int, ...]],
    backbone_keys: list[str],
    describe: str = "",
) -> tuple[dict[str, torch.Tensor], LoadReport]:
    """Map checkpoint ``tensors`` onto ``target`` names (architecture key -> shape).

    ``backbone_keys`` are the target keys that must be filled (the classifier head may be absent).
    Returns the tensors under target names and a report.
    """
    prefix, score = _by_prefix(tensors, target, set(backbone_keys))
    needed = [k for k in backbone_keys if not _is_bookkeeping(k)]
    mapping: dict[str, str] = {}  # target key -> checkpoint key
    layout = describe
    if score < 0.5 * len(needed):
        ordered = _by_order(tensors, target, backbone_keys)
        if ordered is not None:
            mapping = ordered
            layout = (layout + ", " if layout else "") + "names differ: keys paired in order by shape"
    if not mapping:
        for key in tensors:
            if key.startswith(prefix) and key[len(prefix) :] in target:
                mapping[key[len(prefix) :]] = key
        if prefix:
            layout = (layout + ", " if layout else "") + f"prefix {prefix!r}"
    loaded, matched, mismatched = {}, [], []
    for name, key in mapping.items():
        value = tensors[key]
        if tuple(value.shape) == tuple(target[name]):
            loaded[name] = value
            matched.append(name)
        elif name in backbone_keys:
            mismatched.append((name, tuple(value.shape), tuple(target[name])))
    missing = [k for k in backbone_keys if k not in loaded and not _is_bookkeeping(k)]
    used = set(mapping.values())
    unused = [k for k in tensors if k not in used and k.startswith(prefix) and not _is_bookkeeping(k)]
    return loaded, LoadReport(layout or "plain state dict", matched, missing, mismatched, unused)
