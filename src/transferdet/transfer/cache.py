"""A disk cache of per-box features, so that re-ranking with other metrics costs no forward pass.

The key hashes everything the features depend on: model spec, the checkpoint file's content
(sha256), the dataset path, format and split, layer, feature kind, image size, sampling and seed.
Files are written atomically; the default folder is ``$XDG_CACHE_HOME/transferdet/features``
(``~/.cache/...``).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from transferdet.atomic import atomic_write_bytes
from transferdet.hashing import json_digest
from transferdet.transfer.features import BoxFeatures


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "transferdet" / "features"


def cache_key(**parts: Any) -> str:
    return json_digest(parts, 32)


def load(folder: Path, key: str) -> BoxFeatures | None:
    path = folder / f"{key}.npz"
    if not path.is_file():
        return None
    try:
        with np.load(path) as stored:
            probs = stored["source_probs"] if "source_probs" in stored.files else None
            return BoxFeatures(stored["features"], stored["labels"], stored["boxes"], stored["image_index"], probs)
    except (OSError, ValueError, KeyError):
        return None  # a damaged entry is recomputed


def save(folder: Path, key: str, features: BoxFeatures) -> None:
    arrays = {
        "features": features.features,
        "labels": features.labels,
        "boxes": features.boxes,
        "image_index": features.image_index,
    }
    if features.source_probs is not None:
        arrays["source_probs"] = features.source_probs
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write_bytes(folder / f"{key}.npz", buffer.getvalue())
