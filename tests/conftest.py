"""Shared fixtures: the real datasets in ../shared, a small synthetic set, and a CLI runner."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from transferdet.cli import main
from transferdet.models.backbone import Backbone

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
