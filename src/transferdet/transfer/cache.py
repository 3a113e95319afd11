"""A disk cache of per-box features, so that re-ranking with other metrics costs no forward pass.

The key hashes everything the features depend on: model spec, the checkpoint file's content
(sha256), the dataset's identity (path, format, read options, split, bad-box policy, and the boxes
and labels read, sampling and background boxes included), layer, feature kind, image size, seed,
the forward pass's precision (as resolved on the device) and the extractor's version.
Files are written atomically; the default folder is ``$XDG_CACHE_HOME/transferdet/features``
(``~/.cache/...``).
"""

from __future__ import annotations

import io
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from transferdet.atomic import atomic_write_bytes
from transferdet.data.dataset import ImageRecord
from transferdet.hashing import chunks_digest, json_digest
from transferdet.safe_load import load_npz
from transferdet.transfer.features import BoxFeatures


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "transferdet" / "features"


def dataset_identity(
    path: str | Path, format: str, options: Any, classes: list[str], records: list[ImageRecord], **choices: Any
) -> str:
    """A digest of everything about a dataset that changes per-box features or labels: where and
    how it was read (path, format, read options, ``choices`` such as the bad-box policy and split)
    and the boxes and labels it gave, image by image (so edited annotation files change it)."""
    content = chunks_digest(
        chunk
        for r in records
        for chunk in (
            r.file_name.encode(),
            b"\0",
            r.boxes.tobytes(),
            r.labels.tobytes(),
            f"{r.width}x{r.height}".encode(),
        )
    )
    described = {"path": str(Path(path).resolve()), "format": format, "options": asdict(options), "classes": classes}
    return json_digest({**described, **choices, "content": content}, 32)


def cache_key(**parts: Any) -> str:
    return json_digest(parts, 32)


def load(folder: Path, key: str) -> BoxFeatures | None:
    path = folder / f"{key}.npz"
    if not path.is_file():
        return None
    try:
        stored = load_npz(path)
        probs = stored.get("source_probs")
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
