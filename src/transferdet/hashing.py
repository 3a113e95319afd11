"""Content digests: of a file's bytes, and of a JSON-able definition (sorted keys)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def file_digest(path: Path) -> str:
    """sha256 of the file's content, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def json_digest(value: Any, length: int = 32) -> str:
    """The first ``length`` hex digits of the sha256 of ``value`` as sorted-key JSON (values that
    JSON cannot hold, such as paths, by their ``str``)."""
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def chunks_digest(chunks: Iterable[bytes]) -> str:
    """sha256 of the concatenated ``chunks``."""
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()
