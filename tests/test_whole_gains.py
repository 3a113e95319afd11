"""The whole-transfer analysis on rows whose answers are known by hand: pairing by source, target
and trial; the hierarchical bootstrap; the iteration at which whole reaches body's final AP; the
noise ceiling of whole sources; and the store's rows as the table script reads them."""

from __future__ import annotations

import math

import pytest

from transferdet.bench.whole_gains import hierarchical_mean, noise_ceiling, paired, reach_iteration


def _row(dataset, model, trial, transfer, ap50, **curve):  # noqa: ANN001, ANN202
    return {"dataset": dataset, "model": model, "trial": trial, "transfer": transfer, "AP50": ap50,
            **{f"AP50@{k[1:]}": v for k, v in curve.items()}}  # fmt: skip


ROWS = [
    _row("bccd", "mnv2-chess", 0, "whole", 0.70, i50=0.50, i100=0.66, i150=0.69),
    _row("bccd", "mnv2-chess", 0, None, 0.65),
    _row("bccd", "mnv2-chess", 1, "whole", 0.72, i50=0.40, i100=0.50, i150=0.60),
    _row("bccd", "mnv2-chess", 1, None, 0.71),
    _row("bccd", "mnv2-imagenet", 0, None, 0.60),
    _row("bccd", "mnv2-imagenet", 1, None, 0.62),
    _row("bccd", "mnv2-pothole", 0, "whole", 0.60, i50=0.1, i100=0.2, i150=0.3),
    _row("bccd", "mnv2-pothole", 1, "whole", 0.75, i50=0.1, i100=0.2, i150=0.3),
    _row("bccd", "mnv2-pothole", 0, None, 0.66),
    _row("bccd", "mnv2-pothole", 1, None, 0.80),
]


def test_gains_pair_the_same_source_target_and_trial():
    body = paired(ROWS, "AP50")
    expected = [
        ("mnv2-chess", 0, 0.05),
        ("mnv2-chess", 1, 0.01),
        ("mnv2-pothole", 0, -0.06),
        ("mnv2-pothole", 1, -0.05),
    ]
    assert [(p.source, p.trial, round(p.gain, 6)) for p in body] == expected
    parent = {"mnv2-chess": "mnv2-imagenet", "mnv2-pothole": "mnv2-imagenet"}
    imagenet = paired(ROWS, "AP50", parent)
    assert [round(p.gain, 6) for p in imagenet] == [0.10, 0.10, 0.0, 0.13]


def test_the_hierarchical_bootstrap_brackets_the_mean_and_is_seeded():
    pairs = paired(ROWS, "AP50")
    first, again = hierarchical_mean(pairs, draws=500, seed=3), hierarchical_mean(pairs, draws=500, seed=3)
    assert first == again
    assert first.value == pytest.approx(-0.0125)
    assert first.low <= first.value <= first.high and first.low >= -0.06 and first.high <= 0.05
    one_target = hierarchical_mean([p for p in pairs if p.source == "mnv2-chess"], draws=200)
    assert one_target.low >= 0.01 - 1e-12 and one_target.high <= 0.05 + 1e-12


def test_reach_is_the_first_iteration_at_the_body_runs_final_ap():
    reached = reach_iteration(ROWS)
    assert reached[("bccd", "mnv2-chess", 0)] == 100  # 0.66 >= 0.65 at 100
    assert reached[("bccd", "mnv2-chess", 1)] == 200  # only at the end (0.72 >= 0.71)
    assert reached[("bccd", "mnv2-pothole", 0)] is None  # never


def test_the_noise_ceiling_counts_pairs_ordered_alike_by_both_trials():
    rows = [
        _row("t", "a", 0, "whole", 0.5), _row("t", "a", 1, "whole", 0.6),
        _row("t", "b", 0, "whole", 0.4), _row("t", "b", 1, "whole", 0.5),
        _row("t", "c", 0, "whole", 0.6), _row("t", "c", 1, "whole", 0.4),
        _row("t", "x", 0, "whole", 0.1), _row("t", "x", 1, "whole", 0.9),  # another architecture: no pair
    ]  # fmt: skip
    share, count = noise_ceiling(rows, {"a": "mnv2", "b": "mnv2", "c": "mnv2", "x": "lite0"})
    # a>b in both; a<c then a>c; b<c then b>c: 1 of 3
    assert count == 3 and share == pytest.approx(1 / 3)
    assert math.isnan(noise_ceiling([], {})[0])
