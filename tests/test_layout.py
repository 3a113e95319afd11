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
     ("metrics", "transferdet.models"), ("data", "transferdet.models"),
     ("bench", "transferdet.select"), ("bench", "transferdet.job_kinds")],  # select is above bench
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


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports, from every import statement (module level,
    function-local and ``TYPE_CHECKING`` ones alike). ``from a import b`` names module ``a.b`` where
    there is one, else ``a``. A parent package's ``__init__``, which Python runs first, is not an
    edge: re-exports in an ``__init__`` would otherwise tie every package to its modules."""
    modules = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        named = []
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                named += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([node.module] if node.module else []))
                named += [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        graph[module] = {r for n in named if (r := resolve(n)) and r != module}
    return graph


def import_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                circles.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(circles)


def test_no_module_imports_itself_round_a_circle_lazy_imports_included():
    assert import_circles(import_graph(SRC)) == []


def test_a_lazy_circle_is_flagged(tmp_path: Path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("from pkg.sub.low import x\n")
    (package / "sub" / "low.py").write_text("x = 1\n")
    (package / "a.py").write_text("from pkg.sub import low\n")
    (package / "b.py").write_text("def f():\n    from pkg.a import g\n")
    (package / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import b\n")
    (package / "sub" / "low.py").write_text("x = 1\ndef f():\n    from ..c import y\n")
    (package / "d.py").write_text("import pkg.sub\n")  # the package's __init__ alone: no circle through it
    (package / "a.py").write_text("from pkg.sub import low\n")
    graph = import_graph(package)
    assert graph["pkg.b"] == {"pkg.a"} and graph["pkg.c"] == {"pkg.b"} and graph["pkg.sub.low"] == {"pkg.c"}
    assert import_circles(graph) == [["pkg.a", "pkg.b", "pkg.c", "pkg.sub.low"]]
