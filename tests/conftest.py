"""Shared fixtures: the real datasets in ../shared, a small synthetic set, and a CLI runner."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from transferdet.cli import main

SHARED = Path(__file__).resolve().parents[2] / "shared"
BCCD = SHARED / "datasets" / "bccd"
CHESS = SHARED / "datasets" / "chess_pieces"
MOBILENET = SHARED / "weights" / "mobilenet_v2-b0353104.pth"


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
