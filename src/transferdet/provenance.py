"""Which code and which packages produced a result: the git commit of the source tree this package
was imported from (with ``+dirty`` when its ``src/`` has uncommitted changes), else the package
version; and the installed distributions, as ``pip freeze`` would list them. A benchmark store
records both, per job and per run, so that one store never mixes code versions silently."""

from __future__ import annotations

import functools
import importlib.metadata
import subprocess
from pathlib import Path

from transferdet import __version__

PACKAGE_DIR = Path(__file__).resolve().parent


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(PACKAGE_DIR), *args], capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


@functools.cache
def code_version() -> str:
    """``<commit>`` or ``<commit>+dirty`` for a checkout, ``transferdet <version>`` for an install."""
    commit = _git("rev-parse", "HEAD")
    if not commit:
        return f"transferdet {__version__}"
    dirty = _git("status", "--porcelain", "--untracked-files=no", "--", str(PACKAGE_DIR))
    return commit + ("+dirty" if dirty else "")


def installed_packages() -> list[str]:
    """``name==version`` of every installed distribution, sorted (what ``pip freeze`` lists)."""
    found = {(d.metadata["Name"] or "?", d.version) for d in importlib.metadata.distributions()}
    return sorted(f"{name}=={version}" for name, version in found)
