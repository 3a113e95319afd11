"""A detector source transfers whole: every class-agnostic tensor carried over, class logits
re-initialised with the rows of matching class names copied, one transfer line recorded; body-only
stays the old behaviour; a detector kind that conflicts with the source is a one-line error."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from transferdet.data import formats
from transferdet.errors import TransferdetError
from transferdet.models.backbones import build_backbone
from transferdet.models.detector_transfer import class_pairs, transfer_state
from transferdet.models.detectors import DetectorConfig, build_detector
from transferdet.runs import RunDir
from transferdet.train.assemble import build_model
from transferdet.train.engine import train
from transferdet.train.job import TrainJob
from transferdet.train.recipes import load_recipe

ARCH = "timm:resnet18"
LOGITS = "head.classification_head.cls_logits"


@pytest.fixture(scope="module")
def fcos_run(synthetic, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("source") / "run"
    recipe = load_recipe("quick", ["iterations=2", "batch_size=2", "fpn_channels=32", "checkpoint_every=2"])
    train(TrainJob(synthetic, f"{ARCH}@random", "fcos", recipe, out, device="cpu", seed=0))
    return out


def _job(synthetic: Path, run: Path, out: Path, **changes) -> TrainJob:
    recipe = load_recipe("quick", ["iterations=1", "batch_size=2", "fpn_channels=64", "checkpoint_every=1"])
    return replace(TrainJob(synthetic, f"{ARCH}@{run}", "fcos", recipe, out, device="cpu", seed=3), **changes)


def _built(job: TrainJob):  # noqa: ANN202
    dataset = formats.read(job.data)
    return build_model(job, dataset, dataset.records("train"))


def test_whole_carries_every_class_agnostic_tensor(synthetic, fcos_run, tmp_path):
    source = RunDir(fcos_run).load_checkpoint()["model"]
    model = _built(_job(synthetic, fcos_run, tmp_path / "a"))
    # the structure is the source's (32 FPN channels), not the recipe's 64
    assert model.detector_config.fpn_channels == 32
    state = model.state_dict()
    agnostic = [k for k in state if not k.startswith(LOGITS)]
    assert agnostic and all(torch.equal(state[k], source[k]) for k in agnostic)
    # same class names: every class row is copied too (auto)
    assert torch.equal(state[f"{LOGITS}.weight"], source[f"{LOGITS}.weight"])
    report = model.transfer_report
    counted = [k for k in agnostic if not k.endswith("num_batches_tracked")]  # bookkeeping is not a tensor to carry
    total = sum(1 for k in state if not k.endswith("num_batches_tracked"))
    assert report.transferred == len(counted) and report.total == total
    assert report.line().startswith(f"transferred {len(counted)}/{total} tensors from {fcos_run} (backbone ")
    assert "re-initialised head.classification_head.cls_logits (10 -> 10 classes, 10 row(s) copied" in report.line()


def test_class_map_none_keeps_the_fresh_logits_and_body_only_is_the_old_path(synthetic, fcos_run, tmp_path):
    source = RunDir(fcos_run).load_checkpoint()["model"]
    fresh = _built(_job(synthetic, fcos_run, tmp_path / "a", class_map="none")).state_dict()
    assert not torch.equal(fresh[f"{LOGITS}.weight"], source[f"{LOGITS}.weight"])
    body = _built(_job(synthetic, fcos_run, tmp_path / "b", transfer="body"))
    assert not hasattr(body, "transfer_report")
    state = body.state_dict()
    assert all(torch.equal(state[k], source[k]) for k in state if k.startswith("backbone.body."))
    tower = "head.classification_head.conv.0.weight"
    assert not torch.equal(state[tower], source[tower])


def test_rows_of_matching_names_are_copied_by_name(fcos_run):
    source = RunDir(fcos_run).load_checkpoint()["model"]
    digits = [str(d) for d in range(10)]
    assert class_pairs(["Seven", "3"], ["seven", "3"], "auto") == {0: 0, 1: 1}
    torch.manual_seed(0)
    config = DetectorConfig("fcos", 2, min_size=128, max_size=128, fpn_channels=32, norm="bn")
    model = build_detector(build_backbone(f"{ARCH}@random"), config)
    before = model.state_dict()[f"{LOGITS}.weight"].clone()
    report = transfer_state(model, source, "src", (["3", "kite"], digits))
    after = model.state_dict()[f"{LOGITS}.weight"]
    assert torch.equal(after[0], source[f"{LOGITS}.weight"][3])  # "3" from the source's row 3
    assert torch.equal(after[1], before[1])  # "kite": the detector's own initialisation
    assert report.rows_copied == ["3"] and "10 -> 2 classes, 1 row(s) copied: 3" in report.line()
    with pytest.raises(TransferdetError, match="unknown class name.*'zebra'"):
        transfer_state(model, source, "src", (["3", "kite"], digits), {"kite": "zebra"})


def test_the_transfer_line_is_recorded_in_the_manifest(synthetic, fcos_run, tmp_path):
    out = tmp_path / "whole"
    train(_job(synthetic, fcos_run, out))
    manifest = json.loads((out / "recipe.json").read_text())
    assert manifest["job"]["transfer"] == "whole"
    assert manifest["job"]["transfer_report"]["line"].startswith("transferred ")
    assert manifest["detector"]["fpn_channels"] == 32


def test_a_conflicting_detector_is_one_error_naming_both(synthetic, fcos_run, tmp_path):
    with pytest.raises(TransferdetError, match=f"--detector retinanet conflicts with the source {fcos_run}, a fcos"):
        _built(_job(synthetic, fcos_run, tmp_path / "a", detector="retinanet"))


def test_test_split_evaluations_leave_training_unchanged(synthetic, tmp_path):
    """A learning curve (eval_test_at) evaluates the test split midway and changes nothing else."""
    recipe = load_recipe("quick", ["iterations=3", "batch_size=2", "fpn_channels=32", "checkpoint_every=3"])
    plain = TrainJob(synthetic, f"{ARCH}@random", "fcos", recipe, tmp_path / "plain", device="cpu", seed=1)
    curved = replace(plain, out=tmp_path / "curve", eval_test_at=(1, 2))
    first, second = train(plain), train(curved)
    assert first["AP50"] == second["AP50"] and first["AP"] == second["AP"]
    a, b = (RunDir(p).load_checkpoint()["model"] for p in (plain.out, curved.out))
    assert all(torch.equal(a[k], b[k]) for k in a)
    evaluations = [row for row in RunDir(curved.out).log_rows() if "test_eval" in row]
    assert [row["iteration"] for row in evaluations] == [1, 2]


def test_a_bench_shelf_fine_tunes_whole_or_body_as_its_rule_says(tmp_path, synthetic):
    """Whole: a new job identity with the learning curve stored; body (stated): the identities of the
    jobs stored before whole transfer existed (``transfer`` None stays out of the identity)."""
    import shutil

    import yaml

    from bench_kit import MODELS, TINY_TRAINING, write_config
    from transferdet.bench.config import load_config
    from transferdet.bench.jobs import plan
    from transferdet.bench.runner import run_bench
    from transferdet.bench.store import STORE_FILE

    shutil.copytree(synthetic, tmp_path / "data")
    shutil.copytree(synthetic, tmp_path / "digits")
    rule = {"start_from": {"r10": "resnet10t"}, "datasets": ["digits"]}
    path = write_config(tmp_path, MODELS, recipe_overrides={**TINY_TRAINING, "iterations": 2})
    config = yaml.safe_load(path.read_text())
    config["datasets"] = [{"name": "shapes", "path": "data"}, {"name": "digits", "path": "digits", "tag": "dig"}]
    body = {**config, "shelf": {**rule, "transfer": "body"}}
    path.write_text(yaml.safe_dump(body))
    old = {j.id: j for j in plan(load_config(path), "cpu") if j.kind == "train" and j.model == "r10-dig"}
    assert all(j.definition.get("transfer") is None for j in old.values())
    path.write_text(yaml.safe_dump({**config, "shelf": rule, "targets": ["shapes"], "eval_test_at": [1]}))
    whole = load_config(path)
    jobs = [j for j in plan(whole, "cpu") if j.kind == "train"]
    assert {j.dataset for j in jobs} == {"shapes"}
    mine = [j for j in jobs if j.model == "r10-dig"]
    assert [j.definition["transfer"] for j in mine] == ["whole"] and not set(old) & {j.id for j in mine}
    assert all(j.definition.get("transfer") is None for j in jobs if j.model != "r10-dig")
    assert run_bench(whole, tmp_path / "out", device="cpu", kinds=("source", "train")).failed == []
    db = sqlite3.connect(tmp_path / "out" / STORE_FILE)
    keys = {k for (k,) in db.execute("SELECT key FROM ap WHERE model='r10-dig'")}
    assert {"AP50", "AP", "AP50@1", "AP@1"} <= keys


def test_cls_tower_is_the_classification_tower_at_each_boxs_level(synthetic, fcos_run):
    import numpy as np
    from torchvision.ops import roi_align

    from detector_kit import fpn_level, normalised_image
    from transferdet.run_detector import load_detector
    from transferdet.transfer.features import extract_box_features

    model, _ = load_detector(RunDir(fcos_run))
    body = model.backbone.body
    records = formats.read(synthetic).records("train")[:1]
    tower = extract_box_features(body, records, "cls_tower", image_size=128, detector=model)
    assert tower.features.shape == (records[0].num_boxes, 32)
    with torch.no_grad():
        maps = model.backbone(normalised_image(records[0].path, body))
        for row, box in enumerate(records[0].boxes):
            level = fpn_level(box, lowest=3)
            out = model.head.classification_head.conv(maps[f"c{level}"])
            pooled = roi_align(out, [torch.tensor(box[None], dtype=torch.float32)], 7, 2.0**-level, 2)
            np.testing.assert_allclose(tower.features[row], pooled.mean(dim=(2, 3))[0].double(), rtol=1e-4, atol=1e-5)


def test_a_mixed_list_ranks_detectors_apart_on_their_own_taps(synthetic, fcos_run, cli):
    models = f"{ARCH}@random,{ARCH}@{fcos_run}"
    result = cli("rank", "--data", synthetic, "--models", models, "--layer", "c5,cls_tower", "--metrics", "logme",
                 "--json", "--max-images", "8", "--device", "cpu")  # fmt: skip
    assert result.code == 0, result.err
    rows = result.json()
    assert {r["model"] for r in rows if r["layer"] == "c5"} == {f"{ARCH}@random", f"{ARCH}@{fcos_run}"}
    assert {r["model"] for r in rows if r["layer"] == "cls_tower"} == {f"{ARCH}@{fcos_run}"}


REAL = Path(__file__).resolve().parents[1] / "benchmarks" / "real"


def _stored_identities(path: Path) -> set[str]:
    """A store's job identities, and those its jobs have from any checkout: a store made before
    identities were path-free keeps absolute paths (of the checkout that ran it) until the bench
    renames them, so each is also read relative to its own benchmark folder."""
    import re

    from transferdet.bench.definitions import _digest, _relative

    db = sqlite3.connect(path)
    ids = set()
    for job_id, definition in db.execute("SELECT id, definition FROM jobs"):
        ids.add(job_id)
        found = re.search(r'"(/[^"]*?/benchmarks/real/)', definition)
        if found is not None:
            ids.add(_digest(_relative(json.loads(definition), found.group(1))))
    db.close()
    return ids


@pytest.mark.parametrize(
    ("config", "store", "new"),
    [("bench.yaml", "out", 0), ("shelf.yaml", "shelf", 0), ("select_shelf.yaml", "select-shelf", 0),
     ("select_curve.yaml", "select-curve", 0), ("shelf_whole.yaml", "shelf", 96), ("shelf_whole.yaml", "whole", 0)],
)  # fmt: skip
def test_stored_benchmarks_keep_their_job_identities(config, store, new):
    """Whole transfer changed no stored job's meaning: each committed config plans only jobs its
    store has, but the whole-transfer sweep's 96 fine-tunes (all whole, with their learning curve),
    which its own store holds (done or pending)."""
    from conftest import SHARED, require_shared
    from transferdet.bench.config import load_config
    from transferdet.job_kinds import plan  # select's configs plan races

    require_shared(SHARED)
    stored = _stored_identities(REAL / store / "results.sqlite")
    jobs = plan(load_config(REAL / config), "cpu")
    unknown = [j for j in jobs if j.id not in stored and j.legacy_id not in stored]
    assert len(unknown) == new
    assert all(j.kind == "train" and j.definition["transfer"] == "whole" for j in unknown)
    assert all(j.definition["eval_test_at"] == [50, 100, 150] for j in unknown)


def test_the_whole_ranking_config_adds_only_its_rank_jobs():
    """shelf_whole_rank.yaml (question 2, after the fine-tunes) plans the whole sweep's jobs and 144
    rank jobs: 18 sources x 4 targets x background 0 and 2, on the seven pre-registered taps."""
    from conftest import SHARED, require_shared
    from transferdet.bench.config import load_config
    from transferdet.bench.jobs import plan

    require_shared(SHARED)
    stored = _stored_identities(REAL / "whole" / "results.sqlite")
    unknown = [j for j in plan(load_config(REAL / "shelf_whole_rank.yaml"), "cpu") if j.id not in stored]
    assert len(unknown) == 144 and {j.kind for j in unknown} == {"rank"}
    taps = ["c4", "c5", "c4/wm64", "c5/wm64", "pyramid/wm32", "fpn_ms", "cls_tower"]
    assert all(j.definition["layers"] == taps for j in unknown)


def test_a_race_over_a_detector_source_trains_it_whole(fcos_run, tmp_path):
    from transferdet.models.model_card import ModelEntry
    from transferdet.select.bench_jobs import SelectDefinition
    from transferdet.select.flow import SelectSettings

    entries = {
        "det": ModelEntry(name="det", spec=f"{ARCH}@{fcos_run}"),
        "body": ModelEntry(name="body", spec=f"{ARCH}@{fcos_run}", transfer="body"),
        "imagenet": ModelEntry(spec=f"{ARCH}@random"),
    }
    settings = SelectSettings(recipe=load_recipe("quick"), detector="fcos", entries=entries)
    runs = settings.runs(tmp_path / "data", tmp_path / "race")
    order = list(entries)
    transfers = {name: runs.job(order, name, 10).definition["transfer"] for name in order}
    assert transfers == {"det": "whole", "body": None, "imagenet": None}
    # a race stored before whole transfer existed (no `transfer` beside its candidates) raced bodies
    stored = {"data": {"path": "x"}, "candidates": [{"spec": f"{ARCH}@{fcos_run}"}], "detector": "fcos",
              "recipe": "quick", "recipe_overrides": {}, "budget": 0.3, "eta": 3, "seed": 0, "device": "cpu",
              "image_size": 64, "max_images": None, "out": "r"}  # fmt: skip
    definition = SelectDefinition.model_validate(stored)
    assert definition.candidates[0].transfer == "body" and "transfer" not in definition.model_dump()["candidates"][0]


def test_bad_detector_sources_are_one_line_and_write_nothing(synthetic, fcos_run, tmp_path, cli):
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "foreign.pth")
    (tmp_path / "map.yaml").write_text("'1': zebra\n")
    base = ["train", "--data", synthetic, "--set", "iterations=1", "--device", "cpu"]
    cases = [
        (
            [f"torchvision:fasterrcnn_resnet50_fpn@{tmp_path / 'foreign.pth'}"],
            "not a torchvision fasterrcnn_resnet50_fpn",
        ),
        (
            [f"{ARCH}@{fcos_run}", "--detector", "retinanet"],
            f"--detector retinanet conflicts with the source {fcos_run}",
        ),
        ([f"{ARCH}@{fcos_run}", "--class-map", tmp_path / "map.yaml"], "unknown class name(s): 'zebra'"),
    ]
    for index, (args, message) in enumerate(cases):
        out = tmp_path / f"out{index}"
        result = cli(*base, "--backbone", *args, "--out", out)
        errors = [line for line in result.err.splitlines() if line.startswith("error: ")]  # (the recipe is shown first)
        assert result.code == 2 and len(errors) == 1 and message in errors[0], result.err
        assert "Traceback" not in result.err
        assert not out.exists()
