"""The shelf: sources the bench trains itself, each left out of its own dataset; job identities
that do not depend on where the checkout stands (a sweep's worktree finds the store's jobs); and
the code version every job records."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
import yaml

from bench_kit import MODELS, TINY_TRAINING, write_config
from transferdet.bench.config import load_config
from transferdet.bench.jobs import plan
from transferdet.bench.runner import run_bench
from transferdet.bench.store import STORE_FILE, Store
from transferdet.errors import TransferdetError
from transferdet.provenance import code_version, machine

SHELF = {"start_from": {"r10": "resnet10t"}, "datasets": ["shapes", "digits"]}


def _two_datasets(folder: Path, **extra) -> Path:
    path = write_config(folder, MODELS, **extra)
    config = yaml.safe_load(path.read_text())
    config["datasets"] = [{"name": "shapes", "path": "data"}, {"name": "digits", "path": "digits", "tag": "dig"}]
    path.write_text(yaml.safe_dump(config))
    return path


def test_each_shelf_source_is_a_source_for_every_dataset_but_its_own(tmp_path: Path) -> None:
    jobs = plan(load_config(_two_datasets(tmp_path, shelf=SHELF, trials=2)), "cpu")
    sources = [j for j in jobs if j.kind == "source"]
    assert [(j.dataset, j.model) for j in sources] == [("shapes", "r10-shapes"), ("digits", "r10-dig")]
    assert sources[0].definition["out"] == str(tmp_path / "sources" / "r10-shapes")
    assert sources[0].definition["spec"] == "timm:resnet10t@random"  # trained from the starting model
    trained = {(j.dataset, j.model) for j in jobs if j.kind == "train"}
    assert ("shapes", "r10-dig") in trained and ("digits", "r10-shapes") in trained
    assert ("shapes", "r10-shapes") not in trained and ("digits", "r10-dig") not in trained
    ranked = {(j.dataset, j.model) for j in jobs if j.kind == "rank"}
    assert ranked == {(d, m) for d, m in trained}
    spec = next(j.definition["spec"] for j in jobs if j.model == "r10-dig" and j.kind == "train")
    assert spec == f"timm:resnet10t@{tmp_path / 'sources' / 'r10-dig'}"


def test_a_shelf_naming_an_unknown_model_is_one_line(tmp_path: Path) -> None:
    path = _two_datasets(tmp_path, shelf={"start_from": {"x": "nope"}, "datasets": ["shapes"]})
    with pytest.raises(TransferdetError, match="shelf: unknown model or dataset name.*nope"):
        load_config(path)


def test_job_identities_do_not_depend_on_where_the_checkout_stands(tmp_path: Path) -> None:
    here, there = tmp_path / "main" / "bench", tmp_path / "worktree" / "bench"
    ids = []
    for folder in (here, there):
        folder.mkdir(parents=True)
        ids.append([j.id for j in plan(load_config(_two_datasets(folder, shelf=SHELF)), "cpu")])
    assert ids[0] == ids[1]


def test_a_store_made_with_absolute_identities_is_renamed_not_rerun(tmp_path: Path) -> None:
    jobs = plan(load_config(_two_datasets(tmp_path)), "cpu")
    old = next(j for j in jobs if j.kind == "train")
    assert old.legacy_id != old.id  # the identity before paths were made relative
    with Store(tmp_path / STORE_FILE) as store:
        store.add_jobs([type(old)(**{**old.__dict__, "id": old.legacy_id, "legacy_id": None})])
        store.finished(type(old)(**{**old.__dict__, "id": old.legacy_id}), {"ap": {"AP50": 0.5}}, 1.0)
        store.add_jobs(jobs)
        assert store.status([old.id, old.legacy_id]) == {old.id: "done"}
        assert [(r["job_id"], r["value"]) for r in store.ap()] == [(old.id, 0.5)]


@pytest.fixture(scope="module")
def shelf_bench(tmp_path_factory) -> Path:
    """A shelf of one source trained on a synthetic dataset, ranked and fine-tuned on another."""
    from transferdet.data.synthetic import SynthConfig, synthesize

    folder = tmp_path_factory.mktemp("shelf")
    synthesize(SynthConfig(source="shapes", images=16, size=64, seed=5), folder / "data")
    synthesize(SynthConfig(source="digits", images=16, size=64, seed=6), folder / "digits")
    _two_datasets(
        folder,
        shelf={"start_from": {"r10": "resnet10t"}, "datasets": ["digits"]},
        recipe_overrides={**TINY_TRAINING, "iterations": 2},
    )
    return folder


def test_a_shelf_source_is_trained_then_used_and_every_job_records_its_code(shelf_bench: Path) -> None:
    config = load_config(shelf_bench / "bench.yaml")
    out = shelf_bench / "out"
    outcome = run_bench(config, out, device="cpu", kinds=("source", "train"))
    assert outcome.failed == []
    assert (shelf_bench / "sources" / "r10-dig" / "checkpoint.pt").is_file()
    db = sqlite3.connect(out / STORE_FILE)
    rows = db.execute("SELECT kind, dataset, model, status, code, artifact, host FROM jobs ORDER BY rowid").fetchall()
    done = [r for r in rows if r[3] == "done"]
    assert {r[0] for r in done} == {"source", "train"}  # ranking left for a later run
    assert ("train", "shapes", "r10-dig") in {r[:3] for r in done}
    assert {r[4] for r in done} == {code_version()}
    assert {r[6] for r in done} == {machine()}  # the CPU too: seeded runs agree bit for bit only on a like one
    assert next(r[5] for r in done if r[0] == "source")  # the source's checkpoint digest
    assert db.execute("SELECT COUNT(*) FROM meta WHERE key LIKE 'environment %'").fetchone()[0] == 1
    assert run_bench(config, out, device="cpu", kinds=("train",)).ran == 0
    # a fresh checkout lacks the run folder: nothing to run needs it, so it is not trained again ...
    shutil.rmtree(shelf_bench / "sources")
    assert run_bench(config, out, device="cpu", kinds=("train",)).ran == 0
    assert not (shelf_bench / "sources").exists()
    # ... until a job needs it: then right before that job (deterministic: the same weights)
    started = []
    again = run_bench(
        config, out, device="cpu", kinds=("rank",), on_job=lambda e, j, _: started.append((e, j.kind, j.model))
    )
    assert (again.ran, again.failed, again.changed_sources) == (6, [], [])
    order = [(kind, model) for event, kind, model in started if event == "start"]
    assert order[-2:] == [("source", "r10-dig"), ("rank", "r10-dig")]  # the jobs that need nothing first
    assert again.code_versions["train"] == {code_version(): 5}  # 3 on shapes (the source among them), 2 on digits


def test_the_machine_names_the_cpu_and_the_vector_extensions_torch_dispatches_on(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    block = "processor\t: {n}\nmodel name\t: AMD EPYC 9R14\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_bf16\n\n"
    cpuinfo.write_text(block.format(n=0) + block.format(n=1).replace("AMD EPYC 9R14", "other"))
    assert machine(cpuinfo).endswith("(AMD EPYC 9R14; avx2, avx512f, avx512_bf16, amx_bf16)")
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Old CPU\nflags\t\t: fpu sse2\n")
    assert machine(cpuinfo).endswith("(Old CPU; no listed vector extensions)")
