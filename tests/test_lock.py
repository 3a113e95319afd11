"""The lock (constraints.txt): what is installed is what it pins, so that a fresh machine next year
installs what was tested. Offline: it reads the installed distributions' metadata."""

from __future__ import annotations

import importlib.metadata
import sysconfig
from pathlib import Path

from packaging.markers import Marker
from packaging.utils import canonicalize_name

LOCK = Path(__file__).resolve().parents[1] / "constraints.txt"
# what `python -m venv` puts there before the README's commands run, and the project itself
NOT_LOCKED = {"pip", "transferdet"}  # the venv's own pip; the project, installed editable


def locked_versions(text: str) -> dict[str, set[str]]:
    """Each package's pinned versions whose environment marker holds here (a universal lock may
    pin one package twice, for different Pythons)."""
    pins: dict[str, set[str]] = {}
    for line in text.splitlines():
        requirement, _, marker = line.split("#")[0].partition(";")
        if "==" not in requirement or (marker.strip() and not Marker(marker.strip()).evaluate()):
            continue
        name, version = (part.strip() for part in requirement.split("=="))
        pins.setdefault(canonicalize_name(name), set()).add(version)
    return pins


def lock_mismatches(installed: dict[str, str], pins: dict[str, set[str]]) -> list[str]:
    """Installed distributions the lock does not pin, or pins at another version."""
    problems = []
    for name, version in sorted(installed.items()):
        if name in NOT_LOCKED:
            continue
        if name not in pins:
            problems.append(f"{name} {version}: not in the lock")
        elif version.split("+")[0] not in pins[name]:
            problems.append(f"{name} {version}: the lock pins {', '.join(sorted(pins[name]))}")
    return problems


def installed_distributions() -> dict[str, str]:
    """The distributions installed in this environment's site-packages (not those a library puts
    on ``sys.path`` at run time: Ray adds its vendored ``thirdparty_files``, colorama among them)."""
    folders = list(dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib")))
    found = importlib.metadata.distributions(path=folders)
    return {canonicalize_name(d.metadata["Name"]): d.version for d in found}


def test_every_installed_distribution_is_the_locked_one():
    installed = installed_distributions()
    assert "torch" in installed and "timm" in installed  # the environment's own packages were read
    assert lock_mismatches(installed, locked_versions(LOCK.read_text())) == []


def test_the_lock_states_the_command_that_made_it():
    head = LOCK.read_text().splitlines()[:2]
    assert "bash .ci/lock" in head[1] and "uv pip compile" in head[1]


def test_a_missing_or_different_distribution_is_flagged():
    lock = "numpy==2.4.6 ; python_full_version >= '3.0'\nnumpy==9.9 ; python_full_version < '3.0'\nrich==15.0.0\n"
    pins = locked_versions(lock)
    assert pins == {"numpy": {"2.4.6"}, "rich": {"15.0.0"}}
    found = lock_mismatches({"numpy": "2.4.5", "rich": "15.0.0", "tqdm": "4.70.1", "pip": "23.2.1"}, pins)
    assert found == ["numpy 2.4.5: the lock pins 2.4.6", "tqdm 4.70.1: not in the lock"]
    assert lock_mismatches({"torch": "2.14.1+cpu"}, {"torch": {"2.14.1"}}) == []
