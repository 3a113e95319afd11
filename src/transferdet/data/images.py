"""Image files: probing sizes from headers, finding image folders, placing images in an output."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from transferdet.data.dataset import ImageRecord
from transferdet.errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def probe(record: ImageRecord) -> ImageRecord:
    """Read the image header once: set ``image_problem`` and, if unknown, the size.

    Only the header is decoded (Pillow opens lazily), so this is cheap even for large images.
    """
    if record.probed:
        return record
    record.probed = True
    if not record.path.is_file():
        record.image_problem = "missing_image"
        return record
    try:
        with Image.open(record.path) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError, ValueError):
        record.image_problem = "unreadable_image"
        return record
    if record.width <= 0 or record.height <= 0:
        record.width, record.height = int(width), int(height)
    return record


def find_image(folder: Path, stem: str) -> Path | None:
    """The image in ``folder`` whose name without suffix is ``stem``, if there is one."""
    for suffix in IMAGE_SUFFIXES:
        for candidate in (folder / f"{stem}{suffix}", folder / f"{stem}{suffix.upper()}"):
            if candidate.is_file():
                return candidate
    return None


def place_image(source: Path, target: Path, mode: str) -> None:
    """Put ``source`` at ``target`` by ``copy``, ``link`` (hard link, copy across devices) or
    ``symlink``."""
    if not source.is_file():
        raise DataError(
            source, "image file does not exist, cannot write it out (--on-bad-box drop leaves such images out)"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    if mode == "symlink":
        os.symlink(source.resolve(), target)
        return
    if mode == "link":
        try:
            os.link(source, target)
            return
        except OSError:
            pass
    shutil.copy2(source, target)
