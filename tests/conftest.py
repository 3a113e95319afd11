"""Shared fixtures: the real datasets in ../shared, a small synthetic set, and a CLI runner."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from transferdet.cli import main
from transferdet.models.backbone import Backbone

SHARED = Path(__file__).resolve().parents[2] / "shared"
BCCD = SHARED / "datasets" / "bccd"
CHESS = SHARED / "datasets" / "chess_pieces"
MOBILENET = SHARED / "weights" / "mobilenet_v2-b0353104.pth"


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist, the workers share the cores: each gets its share of threads (torch, the
    BLAS libraries, and through OMP_NUM_THREADS the subprocesses it starts). Two workers of two
    threads each on two cores oversubscribe OpenMP, whose spinning threads then slow every test."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if not workers:
        return
    import torch
    from threadpoolctl import threadpool_limits

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1  # macOS
    threads = max(1, cores // int(workers))
    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)
    threadpool_limits(threads)  # for the whole worker process


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """pytest-xdist's groups (--dist loadgroup): a file's tests run in one worker, so that its module
    fixtures are built once, and the files with a test marked ``cluster`` (a Ray cluster, torchrun)
    share one worker, so that two clusters never start side by side."""
    clusters = {item.path for item in items if item.get_closest_marker("cluster")}
    for item in items:
        item.add_marker(pytest.mark.xdist_group("cluster" if item.path in clusters else item.path.name))


def require_shared(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is absent: the shared datasets/weights live in ../shared beside the checkout")
    return path


@pytest.fixture
def bccd() -> Path:
    return require_shared(BCCD)


@pytest.fixture
def chess() -> Path:
    return require_shared(CHESS)


@pytest.fixture
def mobilenet_weights() -> Path:
    """torchvision's ImageNet MobileNetV2 weights, from ../shared."""
    return require_shared(MOBILENET)


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    def json(self):
        return json.loads(self.out)


@pytest.fixture
def forward_passes(monkeypatch) -> list[int]:
    """Counts the calls of any backbone's forward from here on (ranking runs an inference copy of
    the backbone, its batch norms folded, so a hook on the original's modules would not see them)."""
    calls = [0]
    forward = Backbone.forward

    def counted(self: Backbone, x):  # noqa: ANN001, ANN202
        calls[0] += 1
        return forward(self, x)

    monkeypatch.setattr(Backbone, "forward", counted)
    return calls


@pytest.fixture
def cli(capsys):
    """Run ``transferdet ARGS`` in-process through the real entry point."""

    def run(*args: object) -> CliResult:
        capsys.readouterr()
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory) -> Path:
    """A small synthetic digits dataset (COCO, with masks), made once per test session."""
    from transferdet.data.synthetic import SynthConfig, synthesize

    path = tmp_path_factory.mktemp("synthetic") / "digits"
    synthesize(SynthConfig(source="digits", images=40, seed=3), path)
    return path


def cli_commands(command=None, path=()):  # noqa: ANN001, ANN201
    """(name, click command) of every leaf command of transferdet's CLI, "data info" style."""
    import typer.main

    from transferdet.cli import app

    command = command or typer.main.get_command(app)
    if hasattr(command, "commands"):
        for name, sub in command.commands.items():
            yield from cli_commands(sub, (*path, name))
    else:
        yield " ".join(path), command
