"""The house rules of the code base (docs/architecture.md), checked like behaviour: each decision
has one home, stages depend in one direction, files and functions stay readable."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "transferdet"
SOURCES = sorted(SRC.rglob("*.py"))
RUN_FILES = ("recipe.json", "checkpoint.pt", "metrics.json", "log.jsonl", "trials.json", "teacher.pt", "teacher.json")
# functions longer than the limit, with the reason they must be (none today)
LONG_FUNCTIONS: dict[str, str] = {}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_only_the_run_folder_owner_names_its_files():
    owner = SRC / "runs.py"
    offenders = [
        f"{path.relative_to(SRC)}: {name}"
        for path in SOURCES
        if path != owner
        for name in RUN_FILES
        if name in path.read_text()
    ]
    assert offenders == []
    assert all(name in owner.read_text() for name in RUN_FILES)


@pytest.mark.parametrize(
    ("stage", "forbidden"),
    [("transfer", "transferdet.train"), ("train", "transferdet.zoo"), ("models", "transferdet.train"),
     ("metrics", "transferdet.models"), ("data", "transferdet.models")],
)  # fmt: skip
def test_stages_depend_in_one_direction(stage, forbidden):
    offenders = [
        f"{path.relative_to(SRC)} imports {module}"
        for path in sorted((SRC / stage).rglob("*.py"))
        for module in _imports(path)
        if module == forbidden or module.startswith(forbidden + ".")
    ]
    assert offenders == []


def test_files_and_functions_stay_small():
    long_files = [f"{p.relative_to(SRC)}: {n}" for p in SOURCES if (n := len(p.read_text().splitlines())) > 300]
    long_functions = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                name = f"{path.relative_to(SRC)}::{node.name}"
                if node.end_lineno - node.lineno + 1 > 60 and name not in LONG_FUNCTIONS:
                    long_functions.append(f"{name}: {node.end_lineno - node.lineno + 1} lines")
    assert long_files == [] and long_functions == []


@pytest.mark.parametrize(
    ("pattern", "home"),
    [
        (r"cuda\.is_available\(\)", "devices.py"),  # the default device
        (r"partition\(\"@\"\)|split\(\"@\"", "models/specs.py"),  # splitting a spec at @
        (r"0\.485, 0\.456, 0\.406", "models/normalisation.py"),  # ImageNet's mean
        (r"hashlib\.sha256", "hashing.py"),  # content digests
        (r"\(\"test\", \"val\"", "data/split.py"),  # which split is held out
        (r"torch\.autocast\(", "precision.py"),  # autocast, and where it is switched off
    ],
)
def test_each_decision_has_one_home(pattern, home):
    found = sorted(str(p.relative_to(SRC)) for p in SOURCES if re.search(pattern, p.read_text()))
    assert found == [home]
