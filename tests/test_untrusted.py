"""Checkpoints are data: every hostile or broken file of the corpus (tests/hostile_corpus.py) gives
one line naming the file and exit 2 (a NaN weight: a warning, and the command goes on), runs
nothing and writes nothing; no code outside ``safe_load.py`` unpickles; run folders made now load
as data, and an older one converts only on the user's explicit word."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from hostile_corpus import CASES, Case
from transferdet.errors import TransferdetError
from transferdet.runs import RunDir
from transferdet.train.engine import train
from transferdet.train.job import TrainJob
from transferdet.train.recipes import load_recipe

SOURCE = Path(__file__).resolve().parents[1] / "src" / "transferdet"


@pytest.fixture(scope="module")
def real_run(synthetic, tmp_path_factory) -> Path:
    """A real (one-iteration) FCOS run made by the current code."""
    out = tmp_path_factory.mktemp("run") / "run"
    recipe = load_recipe("quick", ["iterations=1", "batch_size=2", "fpn_channels=32", "checkpoint_every=1"])
    train(TrainJob(synthetic, "timm:resnet18@random", "fcos", recipe, out, device="cpu", seed=0))
    return out


def _listing(folder: Path) -> dict[str, float]:
    return {str(p.relative_to(folder)): p.lstat().st_mtime for p in folder.rglob("*")}


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 20
    assert len({case.name for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_a_hostile_file_is_one_line_and_runs_nothing(case: Case, tmp_path, real_run, cli, monkeypatch):
    folder, work = tmp_path / "corpus", tmp_path / "cwd"
    folder.mkdir()
    work.mkdir()
    marker = tmp_path / "MARKER"
    args = case.build(folder, marker, real_run)
    before = _listing(folder)
    monkeypatch.chdir(work)
    result = cli(*args)
    assert not marker.exists(), f"{case.name}: the file ran code"
    assert result.code == case.code, result.err
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert "Traceback" not in result.err
    if case.code == 2:
        assert len(lines) == 1, result.err
        assert lines[0].startswith("error: ") and case.expect in lines[0], lines[0]
        assert case.name in lines[0]  # the file is named
        if case.name.startswith("payload"):  # code is never offered the opt-in meant for old runs
            assert "upgrade-run" not in lines[0]
    else:
        assert any(line.startswith("warning: ") and case.expect in line for line in lines), result.err
    assert _listing(folder) == before, "a file was written beside the input"
    assert not any(work.iterdir()), "a file was written in the working folder"


def test_the_old_run_names_the_opt_in_and_converts_only_with_it(tmp_path, real_run, cli):
    old = tmp_path / "old"
    shutil.copytree(real_run, old)
    good = torch.load(old / "checkpoint.pt", weights_only=True)
    np.random.seed(11)
    numpy_state = np.random.get_state()
    torch.save({**good, "random": [{**good["random"][0], "numpy": numpy_state}]}, old / "checkpoint.pt")
    with pytest.raises(TransferdetError, match="upgrade-run .*old --trust"):
        RunDir(old).load_checkpoint()
    refused = cli("zoo", "upgrade-run", old)
    assert refused.code == 2 and "pass --trust" in refused.err
    assert not (old / "checkpoint.pt.old").exists()
    done = cli("zoo", "upgrade-run", old, "--trust")
    assert done.code == 0, done.err
    state = RunDir(old).load_checkpoint()  # now as data
    assert (old / "checkpoint.pt.old").is_file()
    for key, value in good["model"].items():
        assert torch.equal(state["model"][key], value)
    from transferdet.train.state import restore_random_state

    np.random.seed(0)
    restore_random_state(state["random"][0])
    np.testing.assert_array_equal(np.random.get_state()[1], numpy_state[1])


def test_a_run_made_now_loads_with_weights_only(real_run):
    state = torch.load(real_run / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert set(state) >= {"model", "optimizer", "iteration", "random"}
    assert RunDir(real_run).checkpoint_iteration() == 1


def test_random_states_survive_the_data_only_format():
    from transferdet.train.state import random_state, restore_random_state

    np.random.seed(5)
    saved = random_state()
    first = np.random.random(4)
    np.random.seed(99)
    restore_random_state(saved)
    np.testing.assert_array_equal(np.random.random(4), first)


def _calls(tree: ast.AST) -> list[tuple[str, int, ast.Call]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            base = node.func.value
            owner = base.id if isinstance(base, ast.Name) else getattr(base, "attr", "")
            found.append((f"{owner}.{node.func.attr}", node.lineno, node))
    return found


FORBIDDEN = {"pickle.load", "pickle.loads", "pickle.Unpickler", "yaml.load", "yaml.unsafe_load",
             "yaml.full_load", "yaml.safe_load", "np.load", "numpy.load", "torch.load"}  # fmt: skip


def test_only_the_loading_module_unpickles():
    """The source walk: outside safe_load.py, no unpickling or YAML loading call at all; inside it,
    every torch.load passes weights_only=True but the one behind the user's --trust."""
    offenders = []
    for path in sorted(SOURCE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for name, line, node in _calls(tree):
            if name not in FORBIDDEN:
                continue
            if path.name != "safe_load.py":
                offenders.append(f"{path.relative_to(SOURCE)}:{line}: {name}")
            elif name == "torch.load":
                flag = next((k.value for k in node.keywords if k.arg == "weights_only"), None)
                trusted = _inside(tree, node, "load_trusted_torch")
                if not (isinstance(flag, ast.Constant) and flag.value is True) and not trusted:
                    offenders.append(f"{path.relative_to(SOURCE)}:{line}: torch.load without weights_only=True")
    assert not offenders, offenders


def _inside(tree: ast.AST, target: ast.AST, function: str) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == function:
            return any(child is target for child in ast.walk(node))
    return False


def test_the_source_walk_catches_an_offender(tmp_path):
    """The walk above is not vacuous: it finds a plain torch.load and a yaml.load."""
    tree = ast.parse("import torch, yaml\ntorch.load('x')\nyaml.load(open('y'))\n")
    assert {name for name, _, _ in _calls(tree)} >= {"torch.load", "yaml.load"}
