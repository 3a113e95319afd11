"""select's race over real runs on synthetic data: a stub screen ranks the truly best candidate
last, so the race must find it; the iterations trained are the plan's; a race killed in the middle
of a rung (two iterations each) resumes to the same pick."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from transferdet.runs import RunDir

BASE = ["batch_size=4", "num_workers=0", "min_size=[64]", "max_size=64", "warmup_iterations=1", "fpn_channels=64",
        "checkpoint_every=100"]  # fmt: skip
RANDOM = ["timm:resnet18@random", "timm:resnet10t@random", "torchvision:mobilenet_v3_small@random"]


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    from transferdet.data.synthetic import SynthConfig, synthesize

    path = tmp_path_factory.mktemp("race") / "shapes"
    synthesize(SynthConfig(source="shapes", images=32, size=64, seed=5), path)
    return path


@pytest.fixture(scope="module")
def pretrained(shapes: Path) -> str:
    """A backbone pretrained on this very task (150 iterations of FCOS): the truly best candidate."""
    from transferdet.train.engine import train
    from transferdet.train.job import TrainJob
    from transferdet.train.recipes import load_recipe

    out = shapes.parent / "source"
    recipe = load_recipe("quick", [*BASE, "iterations=150", "lr=0.003"])
    train(TrainJob(shapes, "timm:resnet10t@random", "fcos", recipe, out, device="cpu"))
    return f"timm:resnet10t@{out}"


def _blind(folder: Path) -> list[str]:
    """Three backbones that cannot see: every weight zero, so their features are the same for every
    image and they stay so (no gradient reaches a layer behind a zero one)."""
    import timm
    import torch
    import torchvision

    specs = []
    models = [("timm:resnet18", timm.create_model("resnet18")), ("timm:resnet10t", timm.create_model("resnet10t")),
              ("torchvision:mobilenet_v3_small", torchvision.models.mobilenet_v3_small())]  # fmt: skip
    for spec, model in models:
        path = folder / f"{spec.split(':')[1]}-zeros.pth"
        torch.save({k: torch.zeros_like(v) for k, v in model.state_dict().items()}, path)
        specs.append(f"{spec}@{path}")
    return specs


def test_the_race_finds_the_pretrained_backbone_the_screen_ranked_last(shapes, pretrained, tmp_path) -> None:
    """Against backbones that cannot see, with rungs of ten iterations. Random-init backbones learn
    these shapes as fast as the pretrained one does within such short runs, and at two iterations a
    rung's validation AP50 is noise (the blind ones' tied constant scores beat the pretrained one on
    one synthetic seed): which candidate won then turned on the CPU's rounding."""
    from transferdet.select.flow import SelectSettings, select
    from transferdet.select.rung_jobs import run_folder
    from transferdet.select.runner import store_trainer
    from transferdet.train.recipes import load_recipe

    candidates = [*_blind(tmp_path), pretrained]
    settings = SelectSettings(load_recipe("quick", [*BASE, "iterations=40", "lr=0.003"]), budget=0.5, eta=2)
    worst_first = lambda names: (list(names), {n: {} for n in names})  # noqa: E731 - the stub screen
    summary = select(shapes, candidates, settings, tmp_path / "race", screen=worst_first, trainer=store_trainer)
    assert summary["plan"]["rungs"] == [10, 20]  # two rungs: 4 candidates, then 2
    assert summary["winner"] == pretrained  # found by the race, not the screen
    trained = sum(RunDir(run_folder(tmp_path / "race", candidates, c)).checkpoint_iteration() for c in candidates)
    assert trained == summary["cost"]["iterations"] == 4 * 10 + 2 * 10 + (40 - 20)  # the budget arithmetic


def test_a_race_killed_in_the_middle_of_a_rung_resumes_to_the_same_pick(shapes, pretrained, tmp_path, cli) -> None:
    sets = [part for item in [*BASE, "iterations=8", "lr=0.003"] for part in ("--set", item)]
    args = ["select", "--data", str(shapes), "--models", ",".join([*RANDOM, pretrained]), "--budget", "0.5",
            "--eta", "2", "--screen-images", "8", "--image-size", "64", "--device", "cpu", *sets, "--json"]  # fmt: skip
    whole = cli(*args, "--out", tmp_path / "whole")
    assert whole.code == 0, whole.err
    killed = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "-m", "transferdet", *args, "--out", str(killed)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:  # kill it once the first rung's first run has its rung and the others have not
        deadline = time.time() + 240
        while process.poll() is None and time.time() < deadline and not list(killed.glob("*/rungs.json")):
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    assert len(list(killed.glob("*/rungs.json"))) == 1, "the race was not killed in the middle of its first rung"
    resumed = cli(*args, "--out", killed)
    assert resumed.code == 0, resumed.err
    first, again = whole.json(), resumed.json()
    assert again["winner"] == first["winner"] and again["final"]["AP50"] == first["final"]["AP50"]
    assert [c["rungs"] for c in again["candidates"]] == [c["rungs"] for c in first["candidates"]]
    assert json.loads((killed / "race.json").read_text())["cost"] == first["cost"]


def test_a_candidate_that_fails_to_train_is_recorded_and_drops_only_itself(shapes, tmp_path, monkeypatch) -> None:
    """Its rung job is recorded as failed in the race's store; the others race on, and the same
    race started again tries it again and trains nothing the others already reached."""
    from transferdet.bench.store import STORE_FILE, Store
    from transferdet.errors import TransferdetError
    from transferdet.select import rung_jobs
    from transferdet.select.flow import SelectSettings, select
    from transferdet.select.runner import store_trainer
    from transferdet.train.recipes import load_recipe

    real = rung_jobs.run_rung

    def failing(definition):  # noqa: ANN001, ANN202 - a RungDefinition
        if definition.spec == RANDOM[0]:
            raise TransferdetError(f"{definition.spec}: loss is nan at iteration 1")
        return real(definition)

    monkeypatch.setattr(rung_jobs, "run_rung", failing)
    settings = SelectSettings(load_recipe("quick", [*BASE, "iterations=8", "lr=0.003"]), budget=0.5, eta=2)
    screen = lambda names: (list(names), {n: {} for n in names})  # noqa: E731
    summary = select(shapes, RANDOM, settings, tmp_path, screen=screen, trainer=store_trainer)
    stopped = {c["model"]: c["stopped"] for c in summary["candidates"]}
    assert stopped[RANDOM[0]].startswith(f"failed: {RANDOM[0]}: loss is nan") and summary["winner"] != RANDOM[0]
    with Store(tmp_path / STORE_FILE) as store:
        rows = store.jobs()
    assert [r["status"] for r in rows if r["model"] == RANDOM[0]] == ["failed"]
    again = select(shapes, RANDOM, settings, tmp_path, screen=screen, trainer=store_trainer)
    with Store(tmp_path / STORE_FILE) as store:
        attempts = {r["model"]: r["attempts"] for r in store.jobs() if r["status"] == "done"}
    assert again["winner"] == summary["winner"] and set(attempts.values()) == {1}  # nothing trained twice


def test_a_tolerant_race_killed_after_its_tie_stop_resumes_to_the_same_pick(shapes, tmp_path, cli) -> None:
    """Random backbones after one iteration are all within the noise of each other: the tolerant race
    stops tied at its first rung (three tied, the next rung keeps two) and finishes the screen's first.
    Killed while that run finishes, it starts again from the runs and the store and ends with the same
    pick, tie and cost."""
    sets = [part for item in [*BASE, "iterations=8", "lr=0.003"] for part in ("--set", item)]
    args = ["select", "--data", str(shapes), "--models", ",".join(RANDOM),
            "--budget", "0.5", "--eta", "2", "--screen-images", "8", "--image-size", "64", "--device", "cpu",
            "--race", "tolerant", *sets, "--json"]  # fmt: skip
    whole = cli(*args, "--out", tmp_path / "whole")
    assert whole.code == 0, whole.err
    first = whole.json()
    assert first["stop"] == f"tie at iteration {first['plan']['rungs'][0]}" and len(first["tied"]) == 3
    assert f"tied within ±{first['tolerance']['value']:.3f} AP50" in whole.err
    killed = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "-m", "transferdet", *args, "--out", str(killed)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        for line in process.stderr:
            if "tied within" in line:
                break
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    assert not (killed / "race.json").exists(), "the race ended before it could be killed"
    resumed = cli(*args, "--out", killed)
    assert resumed.code == 0, resumed.err
    again = resumed.json()
    assert (again["winner"], again["tied"], again["stop"]) == (first["winner"], first["tied"], first["stop"])
    assert again["final"]["AP50"] == first["final"]["AP50"] and again["spent"] == first["spent"]
