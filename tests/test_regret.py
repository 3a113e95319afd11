"""Regret of select's picks against static picks: exact values on hand-made races, ties as the mean
over the tied sources, and paired bootstrap intervals that follow the data."""

from __future__ import annotations

import numpy as np
import pytest

from transferdet.bench.regret import RACE, RANDOM, RaceOutcome, regret, regret_rows, top_ties

AP = {"a": 0.50, "b": 0.40, "c": 0.30, "d": 0.20}


def test_regret_is_the_best_minus_the_pick_and_a_tie_counts_as_the_mean_over_the_tied() -> None:
    assert regret(["a"], AP) == 0.0
    assert regret(["c"], AP) == pytest.approx(0.20)
    assert regret(["b", "d"], AP) == pytest.approx(0.50 - 0.30)  # tied: the mean over both
    assert regret(list(AP), AP) == pytest.approx(0.50 - 0.35)  # a random pick's expectation


def test_a_static_score_picks_every_source_sharing_its_highest_value() -> None:
    assert top_ties({"a": 1.0, "b": 3.0, "c": 3.0, "d": None}) == ["b", "c"]
    assert top_ties({"a": None, "b": float("nan")}) == ["a", "b"]  # no score: no better than random


def _outcomes(race_picks: dict[tuple[str, int], str], budget: float = 0.3) -> list[RaceOutcome]:
    card = {"t1": ["a", "b"], "t2": ["c", "d"]}  # the card's top-1 ties two sources
    return [
        RaceOutcome(target, seed, budget, 0.3, {RACE: [pick], "card top-1": card[target], RANDOM: list(AP)})
        for (target, seed), pick in race_picks.items()
    ]


def _trials(spread: float = 0.0) -> dict[str, dict[str, np.ndarray]]:
    ap = {"t1": dict(AP), "t2": {"a": 0.2, "b": 0.3, "c": 0.6, "d": 0.1}}
    return {t: {m: np.array([v - spread, v + spread]) for m, v in by.items()} for t, by in ap.items()}


def test_regret_rows_measure_each_picker_and_the_races_paired_difference() -> None:
    outcomes = _outcomes({("t1", 0): "a", ("t1", 1): "b", ("t2", 0): "c", ("t2", 1): "c"})
    rows = {r.picker: r for r in regret_rows(outcomes, _trials(), count=200)}
    assert rows[RACE].regret.value == pytest.approx((0.0 + 0.1 + 0.0 + 0.0) / 4)
    card = ((0.5 - 0.45) + (0.5 - 0.45) + (0.6 - 0.35) + (0.6 - 0.35)) / 4  # tied picks: mean over the tie
    assert rows["card top-1"].regret.value == pytest.approx(card)
    assert rows["card top-1"].race_minus_this.value == pytest.approx(0.025 - card)
    assert rows[RACE].race_minus_this is None and rows[RACE].races == 4 and rows[RACE].cost == 0.3
    # one race (t1, seed 1) does worse than the card: a replicate drawing it twice can favour the card
    assert rows["card top-1"].race_minus_this.low < 0 < rows["card top-1"].race_minus_this.high
    # without trial noise a race that always picks the best has regret 0 in every replicate, and
    # beats the card (positive regret on every target) in every replicate: its interval is below 0
    best = _outcomes({("t1", 0): "a", ("t1", 1): "a", ("t2", 0): "c", ("t2", 1): "c"})
    perfect = {r.picker: r for r in regret_rows(best, _trials(), count=100)}
    assert (perfect[RACE].regret.value, perfect[RACE].regret.low, perfect[RACE].regret.high) == (0.0, 0.0, 0.0)
    assert perfect["card top-1"].race_minus_this.high < 0


def test_trial_noise_widens_the_interval_and_the_same_seed_draws_the_same_replicates() -> None:
    outcomes = _outcomes({("t1", 0): "b", ("t1", 1): "b", ("t2", 0): "c", ("t2", 1): "d"})
    quiet = {r.picker: r for r in regret_rows(outcomes, _trials(0.0), count=300)}[RACE].regret
    noisy = {r.picker: r for r in regret_rows(outcomes, _trials(0.08), count=300)}[RACE].regret
    assert noisy.high - noisy.low > quiet.high - quiet.low
    again = {r.picker: r for r in regret_rows(outcomes, _trials(0.08), count=300)}[RACE].regret
    assert again == noisy


def test_budgets_are_summarised_apart() -> None:
    outcomes = _outcomes({("t1", 0): "a", ("t2", 0): "d"}, 0.15) + _outcomes({("t1", 0): "a", ("t2", 0): "c"}, 0.5)
    rows = regret_rows(outcomes, _trials(), count=50)
    by_budget = {(r.budget, r.picker): r.regret.value for r in rows}
    assert by_budget[(0.15, RACE)] == pytest.approx(0.25) and by_budget[(0.5, RACE)] == 0.0
