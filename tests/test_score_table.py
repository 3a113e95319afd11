"""rank's output as a user sees it: tables that fit 80 and 200 columns with no header or number cut,
ties shown as ties (table, rank column, recommended line), one tolerance for all of it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from transferdet.cli.rank_command import recommended_line
from transferdet.cli.score_table import cell_text, render, score_tables
from transferdet.metrics import h_score
from transferdet.ties import TIE_RTOL, competition_ranks, rank_rows, tied_for_first

METRICS = ["transrate", "logme", "tlogme", "h_score", "reg_h_score", "sfda", "etran", "gbc", "leep", "nce", "knn",
           "model_size"]  # fmt: skip
LONG = [
    "torchvision:mobilenet_v2@../shared/weights/mobilenet_v2-b0353104.pth",
    "torchvision:mobilenet_v2@random",
    "timm:efficientnet_lite0@/data/checkpoints/efficientnet-lite0-57934424.pth",
]


def _rows(models: list[str], metrics: list[str], seed: int = 0) -> list[dict]:
    """Scores of every sign and size: -0.0001234, 1e+06-sized counts, ties on model_size."""
    rng = np.random.default_rng(seed)
    rows = []
    for model in models:
        for metric in metrics:
            score = 2224034.0 if metric == "model_size" else float(rng.normal(0, 10) ** 3 * 1e-3)
            rows.append({"model": model, "layer": "c5", "features": "local", "metric": metric, "score": score,
                         "status": "ok", "reason": None, "note": None})  # fmt: skip
    return rank_rows(rows, ("layer", "features", "metric"))


def _assert_nothing_cut(text: str, rows: list[dict], width: int) -> None:
    lines = text.splitlines()
    assert "…" not in text
    assert all(len(line.rstrip()) <= width for line in lines if not line.startswith("m"))  # legend lines may fold
    for row in rows:
        cell = cell_text(row["score"], row["rank"], row["tied"])
        assert any(cell in line for line in lines), f"{cell} is not shown whole"
    for metric in {r["metric"] for r in rows}:
        assert any(f" {metric} " in f" {line} " for line in lines)


@pytest.mark.parametrize("width", [80, 200])
@pytest.mark.parametrize("count", [2, 3, 10])
def test_every_score_and_header_is_shown_whole(width: int, count: int) -> None:
    models = (
        (LONG * 4)[:count] if count <= 3 else [f"timm:resnet{i}@/ckpt/resnet-finetuned-{i}.pth" for i in range(count)]
    )
    rows = _rows(models, METRICS)
    text = render(rows, models, METRICS, width)
    _assert_nothing_cut(text, rows, width)
    for index in range(len(models)):  # the legend names every model by its label
        assert any(line.startswith(f"m{index + 1} = ") for line in text.splitlines())


def test_wide_terminals_use_the_space_and_narrow_ones_wrap_into_more_tables() -> None:
    models = [f"timm:resnet{i}@/checkpoints/run-{i}/last.pth" for i in range(10)]
    rows = _rows(models, METRICS)
    wide, _, labels = score_tables(rows, models, METRICS, 200)
    narrow, _, _ = score_tables(rows, models, METRICS, 80)
    assert len(wide) == 1 and len(narrow) > 1
    assert labels[models[0]] == "m1"  # the specs would not fit 200 columns side by side; labels do


def test_short_specs_are_their_own_labels() -> None:
    models = ["timm:resnet18@random", "timm:resnet10t@random"]
    text = render(_rows(models, ["logme", "knn"]), models, ["logme", "knn"], 80)
    assert "timm:resnet18@random" in text and "m1 =" not in text


def test_scores_within_the_tolerance_tie_and_the_next_rank_skips() -> None:
    assert competition_ranks([2.0, 2.0 * (1 - TIE_RTOL / 2), 1.0]) == [1, 1, 3]
    assert competition_ranks([2.0, 2.0 * (1 - 10 * TIE_RTOL), 1.0]) == [1, 2, 3]
    assert tied_for_first([0.5, 0.7, 0.7]) == [1, 2]
    ranked = rank_rows([{"score": 1.0, "g": 0}, {"score": None, "g": 0}, {"score": 1.0, "g": 0}], ("g",))
    assert [(r["rank"], r["tied"]) for r in ranked] == [(1, True), (None, False), (1, True)]


def test_tied_for_first_is_the_first_group_of_the_competition_ranks() -> None:
    """The vectorised :func:`tied_for_first` (the scores tied with the highest) is rank 1 of
    :func:`competition_ranks` on scores with near-ties, exact ties, negatives and tiny magnitudes."""
    import numpy as np

    rng = np.random.default_rng(0)
    for case in range(3000):
        n = int(rng.integers(1, 8))
        base = [rng.normal(size=n), np.round(rng.normal(size=n), 1), 0.3 + rng.integers(0, 3, n) * 1e-10,
                -0.3 - rng.integers(0, 3, n) * 1e-10, rng.normal(size=n) * 1e-200][case % 5]  # fmt: skip
        scores = [float(s) for s in base]
        assert tied_for_first(scores) == [i for i, r in enumerate(competition_ranks(scores)) if r == 1], scores


def test_two_h_scores_at_the_c_minus_1_ceiling_tie() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 20)
    scores = [h_score(rng.normal(size=(60, 200)), labels) for _ in range(2)]  # N < D: both at C - 1 = 2
    assert scores[0] != scores[1] and abs(scores[0] - 2) < 1e-9
    rows = [{"model": m, "layer": "c5", "features": "local", "metric": "h_score", "score": s}
            for m, s in zip(LONG[:2], scores, strict=True)]  # fmt: skip
    assert [r["rank"] for r in rank_rows(rows, ("metric",))] == [1, 1]


def test_a_tie_for_first_is_said_as_one_in_the_recommended_line() -> None:
    models = LONG[:2]
    rows = _rows(models, ["h_score", "knn", "model_size"])
    for row in rows:
        if row["metric"] == "h_score":
            row["score"] = 2.0
    rows = rank_rows(rows, ("layer", "features", "metric"))
    line = recommended_line(rows, models, ["h_score", "knn", "model_size"])
    assert line.startswith("recommended: no single pick: m1 and m2 tie for first by h_score on c5")
    assert "model_size ties m1 and m2" in line and "picks" in line  # knn is not tied: it picks one
    assert line.endswith("; transferdet select races them on your data")  # the way out of a tie


SHELF = [
    "torchvision:mobilenet_v2@imagenet.pth",
    "torchvision:mobilenet_v2@/runs/mnv2-hardhat",
    "timm:efficientnet_lite0@lite0.pth",
]  # two checkpoints of one architecture (one card), another one


def _carded_line(transrate: list[float], top1: list[float | None]) -> str:
    rows = []
    for model, *scores in zip(SHELF, transrate, top1, [0.9, 0.8, 0.7], strict=True):
        for metric, score in zip(("transrate", "imagenet_top1", "knn"), scores, strict=True):
            rows.append({"model": model, "layer": "c5", "features": "local", "metric": metric, "score": score,
                         "status": "ok" if score is not None else "failed", "reason": None, "note": None})  # fmt: skip
    rows = rank_rows(rows, ("layer", "features", "metric"))
    return recommended_line(rows, SHELF, ["transrate", "knn", "imagenet_top1"])


def test_where_every_model_states_its_card_the_card_orders_architectures_and_the_metric_within() -> None:
    how = "(first by the card's ImageNet top-1, then transrate on c5 among equal top-1; "
    # Lite0's card is the best: it is the pick though TransRate ranks it last
    assert _carded_line([1.0, 3.0, 0.5], [71.878, 71.878, 75.1]).startswith(f"recommended: m3 = {SHELF[2]} {how}")
    # MobileNetV2's card is the best: TransRate picks between its two checkpoints, not Lite0 (its own first)
    line = _carded_line([1.0, 3.0, 9.0], [71.878, 71.878, 70.0])
    assert line.startswith("recommended: m2 = torchvision:mobilenet_v2@mnv2-hardhat " + how)
    assert "imagenet_top1 ties m1 and m2" in line and "knn picks m1" in line
    tie = _carded_line([3.0, 3.0, 9.0], [71.878, 71.878, 70.0])
    assert tie.startswith("recommended: no single pick: m1 and m2 tie for first by the card's ImageNet top-1, then")


def test_without_a_card_for_every_model_or_with_one_card_for_all_the_metric_alone_decides() -> None:
    for top1 in ([71.878, None, 75.1], [71.878, 71.878, 71.878]):
        line = _carded_line([1.0, 3.0, 9.0], top1)
        assert line.startswith(f"recommended: m3 = {SHELF[2]} (first by transrate on c5; "), line


def test_the_same_model_twice_ties_on_every_metric_in_table_files_and_line(cli, synthetic, tmp_path) -> None:
    spec = "timm:resnet10t@random"
    args = ["rank", "--data", synthetic, "--models", f"{spec},{spec}", "--image-size", 64, "--max-images", 8,
            "--device", "cpu", "--no-cache", "--out", tmp_path]  # fmt: skip
    result = cli(*args)
    assert result.code == 0, result.err
    rows = json.loads((tmp_path / "scores.json").read_text())
    scored = [r for r in rows if r["score"] is not None]
    assert scored and all(r["rank"] == 1 and r["tied"] for r in scored)
    assert "rank,tied" in (tmp_path / "scores.csv").read_text().splitlines()[0]
    assert "no single pick" in result.out and "(1)" not in result.out
