"""What every format reader and writer shares: options, file parsing with located errors, naming."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transferdet.errors import DataError


@dataclass(frozen=True)
class ReadOptions:
    """How to find and read a dataset where its layout leaves a choice.

    ``images``/``annotations`` override the folders a reader would find by itself;
    ``csv_columns`` maps our column roles (``file``, ``class``, ``x1`` ...) to a CSV's header names;
    ``class_name`` names the single class of a format that has none (Global Wheat's CSV).
    """

    images: Path | None = None
    annotations: Path | None = None
    csv_columns: dict[str, str] = field(default_factory=dict)
    class_name: str = "object"


@dataclass(frozen=True)
class WriteOptions:
    """How a writer places images: ``copy``, ``link`` (hard link) or ``symlink``."""

    image_mode: str = "copy"


CLASS_LIST_FILE = "classes.txt"


def read_text_file(path: Path) -> str:
    """A text file's content; a file that is not UTF-8 is an error naming it and the first bad byte."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        bad = data[error.start : error.start + 1].hex()
        raise DataError(path, f"not a UTF-8 text file (byte 0x{bad} at offset {error.start})") from None


def load_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as error:
        raise DataError(path, f"not valid JSON ({error.msg})", f"line {error.lineno} column {error.colno}") from None
    except UnicodeDecodeError:
        raise DataError(path, "not a UTF-8 text file") from None


def load_yaml(path: Path) -> Any:
    from transferdet.safe_load import load_yaml as safe_yaml

    return safe_yaml(path)


def read_class_list(folder: Path) -> list[str] | None:
    """Class names from ``classes.txt`` in ``folder`` (one per line), if that file exists."""
    path = folder / CLASS_LIST_FILE
    if not path.is_file():
        return None
    names = [line.strip() for line in read_text_file(path).splitlines()]
    names = [name for name in names if name]
    if len(set(names)) != len(names):
        raise DataError(path, "a class name is listed twice")
    return names


def write_class_list(folder: Path, classes: Iterable[str]) -> None:
    (folder / CLASS_LIST_FILE).write_text("".join(f"{name}\n" for name in classes), encoding="utf-8")


def natural_key(text: str) -> list[Any]:
    """Sort key that orders ``2`` before ``10`` (class names made of digits, file names)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def format_coordinate(value: float) -> str:
    """A pixel coordinate as text: an integer where it is one, else two decimals."""
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}"


def parse_float(value: Any, path: Path, where: str, name: str) -> float:
    """A coordinate as float, or a located error naming the offending value."""
    if isinstance(value, bool):
        raise DataError(path, f"{name} {value!r} is not a number", where)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise DataError(path, f"{name} {value!r} is not a number", where) from None


def unique_stems(names: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """For ``(split, file_name)`` pairs, a file stem unique over all splits (formats such as VOC
    key images by stem); clashes get the split as prefix, then a counter."""
    pairs = list(names)
    counts: dict[str, int] = {}
    for _, file_name in pairs:
        stem = Path(file_name).stem
        counts[stem] = counts.get(stem, 0) + 1
    taken: set[str] = set()
    result: dict[tuple[str, str], str] = {}
    for split, file_name in pairs:
        stem = Path(file_name).stem
        candidate = stem if counts[stem] == 1 else f"{split}_{stem}"
        n = 1
        base = candidate
        while candidate in taken:
            candidate = f"{base}_{n}"
            n += 1
        taken.add(candidate)
        result[(split, file_name)] = candidate
    return result
