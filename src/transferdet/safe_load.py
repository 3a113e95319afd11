"""Reading files that strangers wrote, as data: the one module that opens checkpoints, run
folders, teachers, the zoo cache, the feature cache and YAML.

Nothing read here may run code. PyTorch files load with ``weights_only=True`` (PyTorch's own
restricted unpickler, the default since 2.6) and an explicit allowlist; detectron2's and
Caffe2's ``.pkl`` through :class:`DataUnpickler`, which admits only the globals a pickled NumPy
array needs; safetensors has no code path at all; YAML loads with the safe loader; ``.npz`` with
``allow_pickle=False``. A file that asks for anything else is refused before any of it runs, in one
line naming the file and what it asked for. The only deliberate exception is
:func:`load_trusted_torch`, behind a flag the user must pass (``zoo upgrade-run --trust``).
"""

from __future__ import annotations

import argparse
import errno
import io
import pickle
import re
import warnings
import zipfile
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from transferdet.errors import DataError, TransferdetError

# (module, name) pairs a detectron2 / Detectron1 (Caffe2) .pkl may name: NumPy arrays, their
# dtypes and scalars, and the containers of plain Python; Python 2 spellings included.
PKL_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),  # protocol 5: an array from its bytes
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("collections", "OrderedDict"),
    ("builtins", "dict"), ("builtins", "list"), ("builtins", "tuple"), ("builtins", "set"),
    ("builtins", "frozenset"), ("builtins", "int"), ("builtins", "float"), ("builtins", "str"),
    ("builtins", "bytes"), ("builtins", "bytearray"), ("builtins", "bool"), ("builtins", "complex"),
    ("__builtin__", "set"), ("__builtin__", "frozenset"), ("__builtin__", "unicode"),
    ("__builtin__", "long"),
    ("_codecs", "encode"),  # bytes under protocol 2 (latin-1 text to bytes; no I/O, no code)
}  # fmt: skip
# what a torch checkpoint may hold beyond tensors and plain types: MoCo stores its argparse
# Namespace (a bag of attributes, no code) next to its weights
TORCH_GLOBALS: tuple[Any, ...] = (argparse.Namespace,)
UPGRADE_HINT = "if you trust it, convert it once with: transferdet zoo upgrade-run {folder} --trust"


def checked_file(path: Path, what: str = "file") -> Path:
    """``path`` if it is a readable, non-empty regular file; otherwise one error naming it."""
    try:
        info = path.stat()
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise TransferdetError(f"{path}: a symbolic-link loop, not a {what}") from None
        raise TransferdetError(f"{path}: no such {what}") from None
    if path.is_dir():
        raise TransferdetError(f"{path}: a directory, where a {what} was expected")
    if info.st_size == 0:
        raise TransferdetError(f"{path}: an empty file, not a {what}")
    return path


def _refused_global(message: str) -> str | None:
    found = re.search(r"GLOBAL ([\w.]+)", message)
    return found.group(1) if found else None


def _torch_failure(path: Path, error: Exception, hint: str = "") -> TransferdetError:
    """One line for a PyTorch file that ``weights_only`` loading refused or could not read;
    ``hint`` is added where the refused global is NumPy's (an older transferdet's own format)."""
    text = str(error)
    name = _refused_global(text) if isinstance(error, pickle.UnpicklingError) else None
    if name is not None:
        tail = f"; {hint}" if hint and name.startswith("numpy") else ""
        return TransferdetError(f"{path}: refused: it asks to load {name}, which is code, not data{tail}")
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    why = f"{type(error).__name__}: {first}" if len(first) < 12 else first
    return TransferdetError(f"{path}: cannot load as a PyTorch checkpoint ({why[:200]})")


def load_torch(path: Path, hint: str = "", mmap: bool = False) -> Any:
    """A PyTorch file's content, loaded as data (``weights_only=True`` with :data:`TORCH_GLOBALS`
    allowed); ``hint`` ends the error when the file asks for NumPy objects."""
    checked_file(path, "checkpoint file")
    archive = zipfile.is_zipfile(path)  # finds the central directory: a cut archive has none
    if not archive and _looks_zip(path):
        raise TransferdetError(f"{path}: a truncated or broken zip archive")
    try:
        with torch.serialization.safe_globals(list(TORCH_GLOBALS)):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap and archive)
    except Exception as error:  # torch.load raises many kinds on a file that is not a checkpoint
        raise _torch_failure(path, error, hint) from None


def _looks_zip(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(4) == b"PK\x03\x04"


def load_trusted_torch(path: Path) -> Any:
    """A PyTorch file loaded with full unpickling: it may run code. Only for a file the user has
    said they trust (``transferdet zoo upgrade-run --trust``)."""
    checked_file(path, "checkpoint file")
    return torch.load(path, map_location="cpu", weights_only=False)


class DataUnpickler(pickle.Unpickler):
    """An unpickler that builds NumPy arrays and plain containers and refuses every other global
    before calling it (the approach of Python's pickle documentation, "Restricting Globals")."""

    def __init__(self, handle: io.BufferedReader, path: Path) -> None:
        super().__init__(handle, encoding="latin1")
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in PKL_GLOBALS:
            return super().find_class(module, name)
        raise TransferdetError(f"{self.path}: refused: it asks to load {module}.{name}, which is code, not data")

    def persistent_load(self, pid: Any) -> Any:
        raise TransferdetError(f"{self.path}: refused: a persistent reference ({str(pid)[:40]}), not plain data")


def load_pickle(path: Path) -> Any:
    """A detectron2 / Caffe2 ``.pkl`` read as data: arrays, numbers, strings and containers only."""
    checked_file(path, "checkpoint file")
    with open(path, "rb") as handle:
        try:
            content = DataUnpickler(handle, path).load()
        except TransferdetError:
            raise
        except Exception as error:  # a broken pickle raises many kinds
            raise TransferdetError(f"{path}: not a readable pickle ({type(error).__name__}: {error})"[:300]) from None
    for key, value in _arrays(content):
        if isinstance(value, np.ndarray) and value.dtype.hasobject:
            raise TransferdetError(f"{path}: {key}: an array of Python objects, where numbers were expected")
    return content


def _arrays(content: Any, prefix: str = "") -> Iterable[tuple[str, Any]]:
    if isinstance(content, Mapping):
        for key, value in content.items():
            yield from _arrays(value, f"{prefix}{key}.")
    else:
        yield prefix.rstrip("."), content


def load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """A safetensors file's tensors; a header that does not match the file is one error."""
    checked_file(path, "checkpoint file")
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as error:  # SafetensorError and the OS errors under it
        raise TransferdetError(f"{path}: not a valid safetensors file ({str(error)[:200]})") from None


def load_yaml(path: Path) -> Any:
    """A YAML file with the safe loader: a tag that would build a Python object is refused, not
    constructed; a parse error names the file, line and column."""
    import yaml

    checked_file(path, "YAML file")
    try:
        with open(path, encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except UnicodeDecodeError:
        raise DataError(path, "not a UTF-8 text file") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1} column {mark.column + 1}" if mark else None
        problem = getattr(error, "problem", None) or "parse error"
        if isinstance(error, yaml.constructor.ConstructorError):
            refused = f"refused: {problem} (a tag that builds an object; YAML is read as data)"
            raise DataError(path, refused, where) from None
        raise DataError(path, f"not valid YAML ({problem})", where) from None


def load_yaml_text(text: str, where: str) -> Any:
    """YAML given as text (a recipe override), with the safe loader."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise TransferdetError(f"{where}: not valid YAML ({str(error).splitlines()[0]})") from None


def load_npz(path: Path) -> dict[str, np.ndarray]:
    """An ``.npz`` archive's arrays, never unpickling an object array."""
    with np.load(path, allow_pickle=False) as stored:
        return {key: stored[key] for key in stored.files}


def warn_non_finite(tensors: Mapping[str, torch.Tensor], path: Path) -> list[str]:
    """Warn, naming them, about floating tensors holding NaN or Inf; returns their names."""
    bad = [
        key
        for key, value in tensors.items()
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all())
    ]
    if bad:
        shown = ", ".join(bad[:8]) + (f" and {len(bad) - 8} more" if len(bad) > 8 else "")
        warnings.warn(f"{path}: NaN or Inf in {len(bad)} tensor(s): {shown}", stacklevel=2)
    return bad


def plain_state(value: Any) -> Any:
    """``value`` with NumPy arrays as tensors and NumPy scalars as Python numbers, so that it
    saves as data that ``weights_only`` loading accepts."""
    if isinstance(value, np.ndarray):
        unsigned = value.dtype.kind == "u" and value.dtype.itemsize > 1  # torch saves uint8 only
        return torch.from_numpy(value.astype(np.int64) if unsigned else value.copy())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, OrderedDict | dict):
        return type(value)((k, plain_state(v)) for k, v in value.items())
    if isinstance(value, list | tuple):
        return type(value)(plain_state(v) for v in value)
    return value
