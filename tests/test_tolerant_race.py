"""select's race that knows its noise (``--race tolerant``), on synthetic rung scores: equal candidates
stop at the first rung tied, far-apart ones race to the end, a tie's pick follows ``--prefer``, the
saved budget is spent only where it can change the answer, and ``--replicates`` measures the noise."""

from __future__ import annotations

import math

import pytest

from transferdet.select.halving import plan_race
from transferdet.select.tolerant_race import Noise, TolerantRace

NAMES = ["a", "b", "c", "d", "e", "f", "g", "h", "i"]
PLAN = plan_race(9, 90, 0.5, eta=3, min_first=1)  # rungs at 26 and 78: 9 candidates, then 3
R1, R2 = PLAN.rungs


def _trainer(score, log: list):  # noqa: ANN001, ANN202
    """A TrainRung from ``score(candidate, iteration, offset)``; ``log`` gets every (candidates, rung, offset)."""

    def train(offset: int):  # noqa: ANN202
        def train_rung(candidates: list[str], iteration: int | None) -> dict[str, dict]:
            log.append((list(candidates), iteration, offset))
            return {c: {"AP50": score(c, iteration, offset)} for c in candidates}

        return train_rung

    return train


def _race(score, noise: Noise | None = None, **more) -> tuple:  # noqa: ANN001
    plan = PLAN
    log: list = []
    train = _trainer(score, log)
    race = TolerantRace(plan, NAMES, train(0), noise or Noise(0.0, 0.04, "test"),
                        replicate=lambda names, rung, offset: train(offset)(names, rung), **more)  # fmt: skip
    return plan, race.run(), log


def test_equal_candidates_stop_at_the_first_rung_tied() -> None:
    plan, result, log = _race(lambda c, it, off: 0.5)
    first = plan.rungs[0]
    assert result.stop == f"tie at iteration {first}" and result.tied == NAMES and result.winner == "a"
    assert [entry[1] for entry in log] == [first, None]  # one rung, then the pick's completion
    assert result.spent == 9 * first + (plan.total - first) < plan.cost
    assert result.saved == plan.cost - result.spent > 0
    assert result.stopped["b"] == f"tied with the pick at iteration {first}" and result.stopped["a"] == "winner"
    assert result.tolerance["b"] == pytest.approx(2 * 0.04)


def test_candidates_apart_by_more_than_the_noise_race_on_and_are_not_called_tied() -> None:
    """The top three within the noise at the first rung go on together (no more than halving keeps); at
    the last rung they are apart by far more than the noise: no tie, every rung raced, the plan's cost."""

    def score(c: str, it: int | None, off: int) -> float:
        top = {"g": 0.5, "h": 0.51, "i": 0.52}
        if c not in top:
            return 0.1
        return top[c] if it == R1 else {"g": 0.3, "h": 0.6, "i": 0.9}[c]

    plan, result, log = _race(score)
    assert plan.survivors == (9, 3)
    assert result.stop == "last rung" and result.winner == "i" and result.tied == ["i"]
    assert [len(entry[0]) for entry in log] == [9, 3, 1] and not any(entry[2] for entry in log)
    assert result.spent == plan.cost and result.saved == 0
    assert result.stopped["a"] == f"rung {R1}" and result.stopped["h"] == f"rung {R2}"


def test_a_leader_clear_of_all_by_far_more_than_the_noise_is_the_pick_at_once() -> None:
    plan, result, log = _race(lambda c, it, off: NAMES.index(c) / 5)
    assert result.stop == f"one left at iteration {R1}" and result.winner == "i" and result.tied == ["i"]
    assert [entry[1] for entry in log] == [R1, None]  # going on alone is the same training as its completion
    assert result.spent == 9 * R1 + (plan.total - R1) < plan.cost


def test_prefer_speed_picks_the_fastest_of_a_tie_and_size_the_smallest() -> None:
    costs = {n: {"latency_ms": 10.0 - i, "params": 100 + (i - 4) ** 2} for i, n in enumerate(NAMES)}
    measured: list = []

    def cost_of(names: list[str]) -> dict:
        measured.append(list(names))
        return {n: costs[n] for n in names}

    _, fast, _ = _race(lambda c, it, off: 0.5, prefer="speed", costs=cost_of)
    assert fast.winner == "i" and fast.tied[0] == "i" and sorted(fast.tied) == NAMES
    assert measured == [NAMES]  # only the tied set is measured, once
    _, small, _ = _race(lambda c, it, off: 0.5, prefer="size", costs=cost_of)
    assert small.winner == "e"


def test_a_runner_up_between_one_and_two_tolerances_gets_a_second_seed() -> None:
    """The runner-up trails by 0.1 (tolerance 0.08): both are trained again with seed + 1; where the second
    seed reverses the order by more, the mean decides. Outside that band nothing more is spent."""
    gaps = {"a": 0.5, "b": 0.4}

    def score(c: str, it: int | None, off: int) -> float:
        base = gaps.get(c, 0.0)
        return base + (0.5 if (c == "b" and off == 1) else 0.0)

    _, result, log = _race(score)
    assert result.stop == f"one left at iteration {R1}" and (["a", "b"], R1, 1) in log
    assert result.winner == "b" and result.replicates["b"] == {f"+1@{R1}": pytest.approx(0.9)}  # means 0.65 vs 0.5
    gaps["b"] = 0.2  # trails by 0.3, more than two tolerances: decided without a second seed
    _, plain, log = _race(score)
    assert plain.winner == "a" and not any(entry[2] for entry in log)


def test_replicates_measure_the_seed_noise_on_the_first_rungs_top_two() -> None:
    spread = {0: 0.0, 1: 0.02, 2: -0.02}
    score = lambda c, it, off: NAMES.index(c) / 10 + spread[off]  # noqa: E731
    plan, result, log = _race(score, replicates=2)
    assert [(entry[0], entry[2]) for entry in log if entry[2]][:2] == [(["i", "h"], 1), (["i", "h"], 2)]
    sd_single = math.sqrt((0.02**2 + 0.02**2) / 2)  # each candidate's sd over its three seeds
    assert result.tolerance["h"] == pytest.approx(2 * math.sqrt(2) * sd_single, rel=1e-6)
    # 9 candidates to the first rung, the replicates (2 candidates x 2 seeds), the pick's completion
    assert result.spent == 9 * R1 + 2 * 2 * R1 + (plan.total - R1)
