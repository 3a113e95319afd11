"""select's noise-aware race rule (select/tie_rule.py): a rung eliminates only candidates that trail
the leader by more than the tolerance, stops when more are tied than the next rung affords (or one
is left), the tied set is ordered by --prefer, and a stored race replays to the rule's pick and cost."""

from __future__ import annotations

import pytest

from transferdet.select.tie_rule import decide, preferred, replay


def test_equal_candidates_tie_and_stop_at_the_first_rung():
    found = decide({"a": 0.50, "b": 0.49, "c": 0.47}, 0.05, keep=1)
    assert found.tied == ["a", "b", "c"] and found.stop


def test_candidates_far_apart_race_on_and_the_last_rung_decides():
    going = decide({"a": 0.9, "b": 0.5, "c": 0.2}, 0.05, keep=2)
    assert going.tied == ["a"] and going.stop  # one left: decided
    on = decide({"a": 0.9, "b": 0.88, "c": 0.2}, 0.05, keep=2)
    assert on.tied == ["a", "b"] and not on.stop  # c eliminated, a and b go on
    assert decide({"a": 0.9, "b": 0.88}, 0.05, keep=None).stop  # the last rung


def test_each_candidate_may_have_its_own_tolerance():
    found = decide({"a": 0.9, "b": 0.8, "c": 0.8}, {"a": 0.0, "b": 0.05, "c": 0.2}, keep=3)
    assert found.tied == ["a", "c"]


def test_prefer_orders_the_tied_set_by_card_speed_or_size():
    costs = {"a": {"latency_ms": 9.0, "params": 1}, "b": {"latency_ms": 2.0, "params": 5}, "c": {}}
    screen = ["a", "b", "c"]
    assert preferred(["c", "b", "a"], screen, "card", costs) == ["a", "b", "c"]
    assert preferred(["c", "b", "a"], screen, "speed", costs) == ["b", "a", "c"]  # no cost: last
    assert preferred(["c", "b", "a"], screen, "size", costs) == ["a", "b", "c"]
    with pytest.raises(ValueError, match="--prefer 'fast'"):
        preferred(["a"], screen, "fast", costs)


def _summary() -> dict:
    rows = {"a": {"10": 0.30, "30": 0.60, "90": 0.80}, "b": {"10": 0.32, "30": 0.58, "90": 0.70},
            "c": {"10": 0.31, "30": 0.40}, "d": {"10": 0.10}}  # fmt: skip
    return {"plan": {"rungs": [10, 30, 90], "survivors": [4, 3, 2], "total": 100},
            "candidates": [{"model": m, "rungs": r} for m, r in rows.items()]}  # fmt: skip


def test_a_stored_race_replays_to_the_rules_pick_and_cost():
    tie = replay(_summary(), 0.05)  # rung 10: a, b, c tie (d out), 3 <= 3 go on; rung 30: a, b tie, 2 <= 2;
    assert (tie.pick, tie.stop_at, tie.tie_stop) == ("a", 90, False)  # rung 90: a leads b by 0.10: a
    assert tie.tied == ["a"] and tie.cost == 4 * 10 + 3 * 20 + 2 * 60 + 10
    stopped = replay(_summary(), 0.5)  # everyone ties at rung 10: 4 > 3 the next rung affords
    assert (stopped.pick, stopped.stop_at, stopped.tie_stop) == ("a", 10, True)
    assert stopped.cost == 4 * 10 + 90  # the pick (the screen's first) completed from rung 10
