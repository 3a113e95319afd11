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

    Only the header is decoded (Pillow opens lazily), so this is cheap even for large images; a
    JPEG or PNG without its end marker (truncated) and an image beyond Pillow's decompression-bomb
    limit count as unreadable.
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
            image_format = image.format
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        # a decompression bomb: more than twice Pillow's MAX_IMAGE_PIXELS (about 179 megapixels)
        record.image_problem = "unreadable_image"
        return record
    if _truncated(record.path, image_format):
        record.image_problem = "unreadable_image"
        return record
    stated = (record.width, record.height)
    if stated != (0, 0) and stated != (width, height):  # 0 x 0: the format states no size
        record.declared_size = stated  # counted as size_mismatch; boxes are checked against the file
    # (a reader that knows a stated size of 0 is wrong, not absent, has set declared_size itself)
    record.width, record.height = int(width), int(height)
    return record


# what a complete file of these formats ends with (a truncated download or copy does not)
END_MARKERS = {"JPEG": b"\xff\xd9", "PNG": b"IEND"}


def _truncated(path: Path, image_format: str | None) -> bool:
    """True when a JPEG or PNG lacks its end marker in its last bytes: cut short, its pixels cannot
    all be decoded (only the header was read so far)."""
    marker = END_MARKERS.get(image_format or "")
    if marker is None:
        return False
    with open(path, "rb") as handle:
        handle.seek(max(0, path.stat().st_size - 1024))  # JPEG stuffs 0xFF in its data: FFD9 is only ever the marker
        return marker not in handle.read()


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
