"""`transferdet select` end to end on synthetic data (two iterations per rung), and its bad input:
each a one-line error before any training."""

from __future__ import annotations

import json

import pytest

TINY = ["iterations=4", "batch_size=2", "num_workers=0", "min_size=[64]", "max_size=64", "warmup_iterations=1",
        "checkpoint_every=100"]  # fmt: skip
MODELS = "torchvision:mobilenet_v3_small@random,timm:resnet10t@random,timm:resnet18@random"


def _args(synthetic, tmp_path, *more: str) -> list:
    sets = [part for item in TINY for part in ("--set", item)]
    screen = ["--screen-images", "8", "--image-size", "64"]
    return ["select", "--data", synthetic, "--out", tmp_path / "race", *sets, *screen, "--device", "cpu", *more]


def test_select_races_and_finishes_the_winners_run(cli, synthetic, tmp_path) -> None:
    models = "torchvision:mobilenet_v3_small@random,timm:resnet10t@random"
    result = cli(*_args(synthetic, tmp_path, "--models", models, "--budget", "0.75", "--eta", "2", "--json"))
    assert result.code == 0, result.err
    summary = result.json()
    assert summary["plan"]["total"] == 4 and len(summary["plan"]["rungs"]) == 2  # at least two rungs
    assert summary["cost"]["iterations"] <= 0.75 * 2 * 4
    assert "racing 2 candidates: rungs at iterations" in result.err
    winner = tmp_path / "race" / summary["winner_run"].split("/")[-1]
    assert json.loads((winner / "metrics.json").read_text())["iterations"] == 4  # a finished run
    assert json.loads((tmp_path / "race" / "race.json").read_text()) == summary
    assert (tmp_path / "race" / "race.png").stat().st_size > 1000  # the learning curves
    page = (tmp_path / "race" / "race.html").read_text()
    assert f"pick: {summary['winner']}" in page and "data:image/png;base64," in page  # the curves inline
    _check_costs(summary, tmp_path / "race", page)
    _check_judgement(summary, result.err, page)
    again = cli(*_args(synthetic, tmp_path, "--models", models, "--budget", "0.75", "--eta", "2"))
    assert again.code == 0 and f"pick: {summary['winner']}" in again.out  # answered from the store and folders
    assert "race.html" in again.out and "it 1" in again.out


def _check_costs(summary: dict, race, page: str) -> None:  # noqa: ANN001
    """Every raced candidate's inference cost, measured on its own run's detector; the Pareto figure."""
    from transferdet.run_detector import load_detector
    from transferdet.runs import RunDir

    for row in summary["candidates"]:
        low, high = row["latency_iqr_ms"]
        assert 0 < low <= row["latency_ms"] <= high and row["runs"] >= 3 and row["flops"] > 0
        assert row["device"].startswith("cpu: ") and row["threads"] == summary["inference"]["threads"] >= 1
    winner = next(row for row in summary["candidates"] if row["model"] == summary["winner"])
    model, _ = load_detector(RunDir(race / summary["winner_run"].split("/")[-1]))
    assert winner["params"] == sum(p.numel() for p in model.parameters())
    assert (race / "pareto.png").stat().st_size > 1000 and summary["pareto"].endswith("pareto.png")
    assert "the Pareto front joined" in page and "thread(s)" in page and "ms (IQR)" in page


def _check_judgement(summary: dict, err: str, page: str) -> None:
    """Plain halving's pick with the noise it was judged by: the tolerance and its sources, the tied set, the
    stop reason, in the plan line, race.json and the race page."""
    noise = summary["noise"]
    assert summary["race"] == "halving" and summary["stop"] == "last rung" and summary["tied"][0] == summary["winner"]
    assert noise["sd_seed"] == pytest.approx(0.0414, abs=1e-4) and noise["seed_source"].startswith("shipped: ")
    assert summary["tolerance"]["value"] >= 2 * noise["sd_seed"] - 1e-9  # the noise floor, image noise on top
    assert summary["spent"] == summary["cost"]["iterations"] == summary["cost"]["planned"] and summary["saved"] == 0
    assert "tolerance at least ±0.083 AP50 (seed noise" in err
    assert "Race: halving, stopped at the last rung" in page
    assert "tied within ±" in page or "no candidate within" in page


def test_the_pareto_front_keeps_what_nothing_beats_on_both():
    from transferdet.select.costs import pareto_front

    points = {"fast": (1.0, 0.5), "slow_best": (5.0, 0.9), "dominated": (3.0, 0.4), "middle": (2.0, 0.7),
              "twin": (2.0, 0.7)}  # fmt: skip
    assert pareto_front(points) == ["fast", "middle", "twin", "slow_best"]


def test_bad_input_is_a_one_line_error_before_any_training(cli, synthetic, tmp_path) -> None:
    unknown = cli(*_args(synthetic, tmp_path, "--models", "timm:no_such_net@random,timm:resnet10t@random"))
    assert unknown.code == 2 and "no_such_net" in unknown.err and len(unknown.err.strip().splitlines()) == 1
    poor = cli(*_args(synthetic, tmp_path, "--models", MODELS, "--budget", "0.01"))
    assert poor.code == 2 and "cannot afford" in poor.err and len(poor.err.strip().splitlines()) == 1
    one = cli(*_args(synthetic, tmp_path, "--models", "timm:resnet10t@random"))
    assert one.code == 2 and "at least two candidates" in one.err
    assert not (tmp_path / "race").exists()  # nothing trained, nothing written


@pytest.mark.parametrize(
    ("options", "said"),
    [
        (["--race", "tolerant", "--tolerance", "-0.01"], "--tolerance -0.01: an AP50 difference, 0 or more"),
        (["--race", "tolerant", "--prefer", "fastest"], "--prefer 'fastest': choose card, speed, size"),
        (["--race", "tolerant", "--replicates", "0"], "--replicates 0: at least 1"),
        (["--race", "coin"], "--race 'coin': choose halving or tolerant"),
        (["--prefer", "speed"], "--prefer and --replicates steer the tolerant race: add --race tolerant"),
    ],
)
def test_bad_judging_options_are_one_line_errors(cli, synthetic, tmp_path, options, said) -> None:
    result = cli(*_args(synthetic, tmp_path, "--models", MODELS, *options))
    assert result.code == 2 and said in result.err and len(result.err.strip().splitlines()) == 1
    assert not (tmp_path / "race").exists()


def test_a_dataset_too_small_to_carve_a_validation_split_is_a_one_line_error(cli, tmp_path) -> None:
    from transferdet.data.synthetic import SynthConfig, synthesize

    tiny = tmp_path / "tiny"
    synthesize(SynthConfig(source="digits", images=1, seed=3), tiny)  # one training image
    models = "torchvision:mobilenet_v3_small@random,timm:resnet10t@random"
    result = cli(*_args(tiny, tmp_path, "--models", models))
    assert result.code == 2 and "too few training images to carve a validation split" in result.err
    assert len(result.err.strip().splitlines()) == 1 and not (tmp_path / "race").exists()


@pytest.mark.cluster
def test_a_race_on_a_local_ray_cluster_gives_the_local_race(cli, synthetic, tmp_path, monkeypatch) -> None:
    """The rungs' runs go through the bench runner; on Ray they train side by side, and the
    seeded runs give the same rung scores, the same pick and the same finished run, at the same
    thread count (Ray's tasks default to one thread, a local run to all cores: on a CPU with AVX2
    only, the two round differently)."""
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'transferdet[ray]')")
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    models = "torchvision:mobilenet_v3_small@random,timm:resnet10t@random"
    races = {}
    for executor in ("local", "ray"):
        result = cli(*_args(synthetic, tmp_path / executor, "--models", models, "--budget", "0.75", "--eta", "2",
                            "--executor", executor, "--threads", "1", "--json"))  # fmt: skip
        assert result.code == 0, result.err
        races[executor] = result.json()
    local, ray = races["local"], races["ray"]
    assert ray["winner"] == local["winner"] and ray["final"]["AP50"] == local["final"]["AP50"]
    assert [c["rungs"] for c in ray["candidates"]] == [c["rungs"] for c in local["candidates"]]


def test_a_race_into_a_folder_that_holds_another_race_is_a_one_line_error(cli, synthetic, tmp_path) -> None:
    """Its run folders' rungs and checkpoints belong to other settings: never answered from or resumed."""
    models = "torchvision:mobilenet_v3_small@random,timm:resnet10t@random"
    first = cli(*_args(synthetic, tmp_path, "--models", models, "--budget", "0.75", "--eta", "2", "--json"))
    assert first.code == 0, first.err
    other = cli(*_args(synthetic, tmp_path, "--models", models, "--budget", "0.75", "--eta", "2", "--seed", "1"))
    assert other.code == 2 and "holds a run with another seed; race into another --out" in other.err
    assert len(other.err.strip().splitlines()) == 1  # before any training: no rung failed


def test_the_screen_orders_as_ranks_recommended_line(monkeypatch) -> None:
    """The card's top-1 orders architectures and the recommended metric the checkpoints that share a
    card; with a candidate that states no card, the metric alone; one it cannot score comes last."""
    from transferdet.select import flow
    from transferdet.train.recipes import load_recipe

    def fake_rank(data, specs, metrics, **_) -> list[dict]:
        return [{"model": str(s), "metric": m, "score": table[str(s)].get(m)} for s in specs for m in metrics]

    monkeypatch.setattr(flow, "rank", fake_rank)
    screen = flow.rank_screen("data", flow.SelectSettings(load_recipe("quick")))
    metric = flow.RECOMMENDED
    table = {"mnv2-a": {metric: 1.0, "imagenet_top1": 71.9}, "mnv2-b": {metric: 3.0, "imagenet_top1": 71.9},
             "lite0": {metric: 0.5, "imagenet_top1": 75.1}, "unscored": {"imagenet_top1": 80.0}}  # fmt: skip
    assert screen(list(table))[0] == ["lite0", "mnv2-b", "mnv2-a", "unscored"]
    del table["mnv2-a"]["imagenet_top1"]
    assert screen(list(table))[0] == ["mnv2-b", "mnv2-a", "lite0", "unscored"]


def test_a_models_files_names_and_cards_reach_the_race(cli, synthetic, tmp_path, monkeypatch) -> None:
    """The listed names label the race, and each entry's stated normalisation and top-1 reach the
    screen and the runs (select once passed bare specs on, and raced EfficientNet-Lite's [-1, 1]
    weights under ImageNet's mean and std, with no card)."""
    import transferdet.select.flow as flow

    seen = {}

    def fake_select(data, candidates, settings, out, **_):
        seen.update(candidates=candidates, specs=[settings.spec(c) for c in candidates])
        return {"winner": candidates[0]}

    monkeypatch.setattr(flow, "select", fake_select)
    monkeypatch.setattr("transferdet.cli.select_command._show", lambda summary: None)
    listing = tmp_path / "candidates.yaml"
    listing.write_text('- {name: lite-half, spec: "timm:resnet10t@random", mean: [0.5, 0.5, 0.5], '
                       "std: [0.5, 0.5, 0.5], imagenet_top1: 75.1}\n- timm:resnet18@random\n")  # fmt: skip
    assert cli(*_args(synthetic, tmp_path, "--models-file", listing)).code == 0
    assert seen["candidates"] == ["lite-half", "timm:resnet18@random"]
    assert seen["specs"][0].mean == (0.5, 0.5, 0.5) and seen["specs"][0].top1 == 75.1
    listing.write_text("- {name: twin, spec: timm:resnet10t@random}\n- {name: twin, spec: timm:resnet18@random}\n")
    twins = cli(*_args(synthetic, tmp_path, "--models-file", listing))
    assert twins.code == 2 and "share a name" in twins.err and "twin" in twins.err
