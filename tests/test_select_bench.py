"""A benchmark of select (a config's ``select`` section, its ``extends``): one race per target, budget
and seed as bench jobs in their own store, and each pick's regret read against the reference
benchmark's fine-tunes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from bench_kit import MODELS, write_config
from transferdet.bench.config import load_config
from transferdet.bench.regret import RACE, RANDOM
from transferdet.bench.runner import run_bench
from transferdet.bench.select_report import COMBINED, reference_trials, write_select_report
from transferdet.bench.store import STORE_FILE, Store
from transferdet.errors import TransferdetError
from transferdet.job_kinds import ALL
from transferdet.select.flow import RECOMMENDED

CANDIDATES = [{**m, "imagenet_top1": 0.1} for m in [*MODELS, {"name": "resnet18", "spec": "timm:resnet18@random"}]]


@pytest.fixture(scope="module")
def select_bench(tmp_path_factory) -> Path:
    """A reference benchmark (three random-init sources, fine-tuned once each on shapes) and a
    select benchmark that extends it: races at two budgets."""
    from transferdet.data.synthetic import SynthConfig, synthesize

    folder = tmp_path_factory.mktemp("select-bench")
    synthesize(SynthConfig(source="shapes", images=24, size=64, seed=5), folder / "data")
    write_config(folder, CANDIDATES, image_size=64, max_images=16, metrics=["transrate", "knn", "model_size"])
    races = {
        "extends": "bench.yaml",
        "select": {"reference": "reference", "budgets": [0.6, 0.9], "seeds": [0], "eta": 2},
    }
    (folder / "select.yaml").write_text(yaml.safe_dump(races))
    outcome = run_bench(load_config(folder / "bench.yaml"), folder / "reference", device="cpu", kinds=("train",))
    assert outcome.failed == []
    return folder


def _untimed(summary: dict) -> dict:
    """A race's summary without its latency measurements (timings: the same race measures anew)."""
    timing = ("latency_ms", "latency_iqr_ms", "runs")
    rows = [{k: v for k, v in row.items() if k not in timing} for row in summary["candidates"]]
    assert all("latency_ms" in row for row in summary["candidates"] if row["rungs"])
    return {**summary, "candidates": rows}


def test_a_select_benchmark_runs_its_races_in_its_own_store_and_resumes(select_bench: Path) -> None:
    config = load_config(select_bench / "select.yaml")
    assert config.models == load_config(select_bench / "bench.yaml").models  # extended, not copied
    outcome = run_bench(config, select_bench / "races", device="cpu", jobs_of=ALL)
    assert (outcome.planned, outcome.ran, outcome.failed) == (2, 2, [])  # one race per budget, nothing else
    with Store(select_bench / "races" / STORE_FILE) as store:
        races = store.races()
        assert {r["summary"]["budget"] for r in races} == {0.6, 0.9} and store.ap() == []
    assert all(r["summary"]["cost"]["fraction_of_all"] <= r["summary"]["budget"] for r in races)
    again = run_bench(config, select_bench / "races", device="cpu", jobs_of=ALL)
    assert (again.skipped, again.ran) == (2, 0)
    # a race's own state is its run folders: with the store lost, the races run again and answer
    # every rung from the folders, training nothing (no checkpoint is rewritten), to the same picks
    checkpoints = {p: p.stat().st_mtime_ns for p in (select_bench / "races" / "races").rglob("*.pt")}
    (select_bench / "races" / STORE_FILE).rename(select_bench / "races" / "lost.sqlite")
    assert run_bench(config, select_bench / "races", device="cpu", jobs_of=ALL).ran == 2
    with Store(select_bench / "races" / STORE_FILE) as store:
        assert [_untimed(r["summary"]) for r in store.races()] == [_untimed(r["summary"]) for r in races]
    assert checkpoints and {p: p.stat().st_mtime_ns for p in checkpoints} == checkpoints


def test_each_picks_regret_is_read_against_the_reference_fine_tunes(select_bench: Path, cli) -> None:
    run_bench(load_config(select_bench / "select.yaml"), select_bench / "races", device="cpu", jobs_of=ALL)
    rows = write_select_report(select_bench / "races", select_bench / "reference", count=50)
    ap = {m: float(a.mean()) for m, a in reference_trials(select_bench / "reference")["shapes"].items()}
    with Store(select_bench / "races" / STORE_FILE) as store:
        winners = {r["summary"]["budget"]: r["summary"]["winner"] for r in store.races()}
    for row in rows:
        if row.picker == RACE:
            assert row.regret.value == pytest.approx(max(ap.values()) - ap[winners[row.budget]])
        if row.picker == RANDOM:
            assert row.regret.value == pytest.approx(max(ap.values()) - np.mean(list(ap.values())))
        if row.picker == "card top-1":  # every source has the same (random-init) card: a random pick
            assert row.regret.value == pytest.approx(max(ap.values()) - np.mean(list(ap.values())))
    by_picker = {(row.budget, row.picker): row.regret.value for row in rows}
    for budget in (0.6, 0.9):  # with one card for all, rank's recommended line is the metric's pick
        assert by_picker[budget, COMBINED] == by_picker[budget, f"{RECOMMENDED} alone"]
    for name in ("select_regret.csv", "select_regret.json", "early_rungs.csv", "regret.png", "early_rungs.png"):
        assert (select_bench / "races" / name).stat().st_size > 0
    shown = cli("report", select_bench / "races")  # the store knows its reference
    assert shown.code == 0, shown.err
    assert "regret in test AP50" in shown.out and "card top-1" in shown.out


def test_bad_select_sections_are_one_line_errors(select_bench: Path) -> None:
    (select_bench / "bad.yaml").write_text(yaml.safe_dump({"extends": "bench.yaml", "select": {"reference": "x",
                                                           "targets": ["nowhere"]}}))  # fmt: skip
    with pytest.raises(TransferdetError, match="select: unknown target"):
        load_config(select_bench / "bad.yaml")
    (select_bench / "far.yaml").write_text(yaml.safe_dump({"extends": "../bench.yaml"}))
    with pytest.raises(TransferdetError, match="name a config in the same folder"):
        load_config(select_bench / "far.yaml")
    with pytest.raises(TransferdetError, match="no reference store"):
        write_select_report(select_bench / "races", select_bench / "missing")


def test_report_takes_another_reference_and_names_a_missing_one(select_bench: Path, cli) -> None:
    run_bench(load_config(select_bench / "select.yaml"), select_bench / "races", device="cpu", jobs_of=ALL)
    moved = cli("report", select_bench / "races", "--reference", select_bench / "missing")
    assert moved.code == 2 and "missing/results.sqlite: no reference store" in moved.err


def test_a_select_section_can_race_tolerant_and_a_halving_races_identity_is_unchanged(select_bench: Path) -> None:
    """``race: tolerant`` reaches each race's settings; a halving race (every stored one) keeps the
    identity it had before races could be tolerant, so stored stores still find their races done."""
    from transferdet.bench.definitions import _digest
    from transferdet.select.bench_jobs import SelectDefinition, select_jobs

    tolerant = yaml.safe_load((select_bench / "select.yaml").read_text())
    tolerant["select"] |= {"race": "tolerant", "prefer": "speed"}
    (select_bench / "tolerant.yaml").write_text(yaml.safe_dump(tolerant))
    jobs = select_jobs(load_config(select_bench / "tolerant.yaml"), "cpu")
    settings = SelectDefinition.model_validate(jobs[0].definition).settings(select_bench / "cache")
    assert (settings.race, settings.prefer, settings.tolerance) == ("tolerant", "speed", 0.0)
    halving = select_jobs(load_config(select_bench / "select.yaml"), "cpu")[0]
    before = {k: v for k, v in halving.definition.items() if k not in ("race", "tolerance", "prefer")}
    assert _digest(halving.definition) == _digest(before) != _digest(jobs[0].definition)
    bad = {**tolerant, "select": {**tolerant["select"], "prefer": "fastest"}}
    (select_bench / "bad.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(TransferdetError, match="prefer"):
        load_config(select_bench / "bad.yaml")
