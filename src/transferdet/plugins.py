"""A user's own code, imported before any model is built: a module name (``my_package.nets``) or a
Python file (``my_net.py``) that registers a timm model (``timm.models.register_model``) or a
torchvision-style builder, which ``timm:NAME`` / ``torchvision:NAME`` specs then name in every
command (``transferdet --plugin``, a bench config's ``plugins``, and each Ray worker).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

from transferdet.errors import TransferdetError
from transferdet.hashing import json_digest


def is_file(plugin: str) -> bool:
    return plugin.endswith(".py") or "/" in plugin or "\\" in plugin


def _import_file(path: Path) -> ModuleType:
    if not path.is_file():
        raise TransferdetError(f"plug-in {path}: no such file")
    # a stable name per file, in sys.modules before it runs (timm's register_model looks it up)
    name = f"transferdet_plugin_{path.stem}_{json_digest(str(path.resolve()), 8)}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def load_plugin(plugin: str) -> ModuleType:
    """Import one plug-in (once per process); its errors become one line naming it."""
    try:
        if is_file(plugin):
            return _import_file(Path(plugin))
        return importlib.import_module(plugin)
    except TransferdetError:
        raise
    except Exception as error:  # noqa: BLE001 - the user's code may raise anything: name it, in one line
        raise TransferdetError(f"plug-in {plugin}: {type(error).__name__}: {error}") from None


def load_plugins(plugins: Iterable[str]) -> list[ModuleType]:
    return [load_plugin(p) for p in plugins]
