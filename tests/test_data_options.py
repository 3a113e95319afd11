"""One set of data options: every command that reads a dataset (it takes ``--data`` or ``--format``)
takes all of them, with the same names, defaults and help; they reach the reading (select's races
included, which had no ``--format``); a bench config's dataset takes them too."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import cli_commands
from transferdet.cli.data_options import OPTIONS

DATA_FLAGS = {"--format", "--split", "--images", "--annotations", "--csv-columns", "--class-name", "--on-bad-box",
              "--split-seed"}  # fmt: skip


def _options(command) -> dict[str, tuple]:  # noqa: ANN001
    """flag -> (default, help) of each option."""
    return {opt: (param.default, param.help) for param in command.params for opt in param.opts if opt.startswith("--")}


def test_every_dataset_reading_command_takes_every_data_option_alike() -> None:
    readers = {name: _options(c) for name, c in cli_commands()
               if {"--data", "--format"} & set(_options(c))}  # fmt: skip
    assert {"rank", "select", "train", "eval", "data info", "data convert", "data show", "distill teacher"} <= set(
        readers
    )
    missing = {name: sorted(DATA_FLAGS - set(options)) for name, options in readers.items()}
    assert {name: flags for name, flags in missing.items() if flags} == {}
    first = next(iter(readers.values()))
    for name, options in readers.items():
        assert {f: options[f] for f in DATA_FLAGS} == {f: first[f] for f in DATA_FLAGS}, name
    assert len(OPTIONS) == len(DATA_FLAGS)


def test_select_takes_format_and_reads_the_data_as_told(cli, synthetic: Path, tmp_path: Path) -> None:
    """Raced as VOC, COCO data has no VOC annotations: the reader's one-line error, not "No such option"."""
    models = "torchvision:mobilenet_v3_small@random,timm:resnet10t@random"
    result = cli("select", "--data", synthetic, "--format", "voc", "--models", models, "--out", tmp_path / "race")
    assert result.code == 2 and "No such option" not in result.err and len(result.err.strip().splitlines()) == 1
    assert "voc" in result.err.lower() or "xml" in result.err.lower()
    bad = cli("select", "--data", synthetic, "--split", "nowhere", "--models", models, "--out", tmp_path / "race")
    assert bad.code == 2 and "nowhere" in bad.err and not (tmp_path / "race").exists()


def test_a_bench_datasets_data_options_reach_its_jobs_and_defaults_keep_identities(tmp_path: Path) -> None:
    import yaml

    from transferdet.bench.config import load_config
    from transferdet.bench.definitions import DataRef, TrainDefinition
    from transferdet.bench.jobs import plan

    dataset = {"name": "d", "path": "data", "on_bad_box": "clip", "split": "train", "images": "pictures"}
    config = {"datasets": [dataset], "models": ["timm:resnet10t@random", "timm:resnet18@random"], "trials": 1}
    (tmp_path / "bench.yaml").write_text(yaml.safe_dump(config))
    jobs = plan(load_config(tmp_path / "bench.yaml"), "cpu")
    data = DataRef.model_validate(jobs[0].definition["data"])
    assert (data.on_bad_box, data.split, data.images) == ("clip", "train", str(tmp_path / "pictures"))
    train = next(j for j in jobs if j.kind == "train")
    job = TrainDefinition.model_validate(train.definition).train_job(tmp_path / "run")
    assert (job.on_bad_box, job.train_split, job.options.images) == ("clip", "train", tmp_path / "pictures")
    assert DataRef(path="x").model_dump() == {"path": "x", "format": "auto"}  # defaults: stored identities kept


@pytest.mark.parametrize("command", ["rank", "train", "eval"])
def test_an_unknown_bad_box_policy_is_refused_alike(cli, synthetic: Path, command: str) -> None:
    result = cli(command, "--data", synthetic, "--on-bad-box", "ignore")
    assert result.code == 2 and "--on-bad-box" in result.err
