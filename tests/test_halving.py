"""The arithmetic of select's race (synchronous successive halving over rungs of one full run)."""

from __future__ import annotations

import pytest

from transferdet.errors import TransferdetError
from transferdet.select.halving import plan_race, race_cost, survivors


def test_survivors_halve_by_eta_down_to_one() -> None:
    assert survivors(8, 3, 3) == (8, 3, 1)
    assert survivors(18, 3, 3) == (18, 6, 2)
    assert survivors(2, 2, 3) == (2, 1, 1)


def test_the_cost_counts_every_iteration_once_and_the_winners_completion() -> None:
    # 8 to iteration 25, 3 of them on to 75, the winner on to 200
    assert race_cost((25, 75), (8, 3), 200) == 8 * 25 + 3 * 50 + 125


@pytest.mark.parametrize(("candidates", "budget"), [(4, 0.3), (8, 0.3), (8, 0.15), (18, 0.3), (8, 0.5)])
def test_the_plan_spends_at_most_the_budget_with_the_longest_first_rung(candidates, budget) -> None:
    plan = plan_race(candidates, 200, budget)
    assert len(plan.rungs) >= 2 and plan.rungs[-1] < 200
    assert plan.cost <= budget * candidates * 200 and plan.fraction == plan.cost / (candidates * 200)
    longer = tuple(r // plan.rungs[0] * (plan.rungs[0] + 1) for r in plan.rungs)
    assert race_cost(longer, plan.survivors, 200) > budget * candidates * 200 or longer[-1] >= 200


def test_a_budget_that_cannot_afford_two_rungs_is_a_one_line_error() -> None:
    with pytest.raises(TransferdetError, match=r"--budget 0.05 cannot afford 2 rungs .* shortest race costs 0.13"):
        plan_race(8, 200, 0.05)
    with pytest.raises(TransferdetError, match="at least two candidates"):
        plan_race(1, 200, 0.3)
    with pytest.raises(TransferdetError, match=r"in \(0, 1\]"):
        plan_race(4, 200, 1.5)


def test_a_race_of_the_best_screened_spends_the_budget_of_fine_tuning_every_candidate() -> None:
    """Where the budget cannot afford the shortest first rung for all eight, the race takes the six
    best screened, under the budget of fine-tuning all eight (not of the six it races)."""
    from transferdet.select.flow import SelectSettings, affordable
    from transferdet.train.recipes import load_recipe

    order = [f"m{i}" for i in range(8)]
    settings = SelectSettings(load_recipe("quick"), budget=0.3, eta=3, min_first=30)
    plan, dropped = affordable(order, 200, settings)
    assert (plan.candidates, dropped) == (6, ["m6", "m7"]) and plan.rungs[0] >= 30
    assert 0.3 * 6 * 200 < plan.cost <= 0.3 * 8 * 200  # the budget of all eight, more than the six's
    assert plan.fraction == plan.cost / (8 * 200) <= 0.3  # its fraction too: of all eight (it said of the six)
    assert plan_race(8, 200, 0.3, 3).rungs[0] < 30  # all eight: a first rung under 30


class FakeRuns:
    """Run folders as a race sees them: each candidate's last trained iteration and its rung
    results; training to a rung costs the iterations since the last one. ``curve`` gives a
    candidate's validation AP50 at an iteration; ``kill_after`` raises after that many calls."""

    def __init__(self, curve, total: int, kill_after: int | None = None, fails: tuple[str, ...] = ()) -> None:
        self.curve, self.total, self.kill_after, self.fails = curve, total, kill_after, fails
        self.at: dict[str, int] = {}
        self.rungs: dict[tuple[str, int], dict] = {}
        self.spent, self.calls = 0, 0

    def __call__(self, candidates: list[str], iteration: int | None) -> dict[str, dict]:
        return {c: self.one(c, iteration) for c in candidates}

    def one(self, candidate: str, iteration: int | None) -> dict:
        self.calls += 1
        if self.kill_after is not None and self.calls > self.kill_after:
            raise KeyboardInterrupt  # the process is killed
        if candidate in self.fails:
            return {"error": f"{candidate}: loss is nan at iteration 3"}
        stop = self.total if iteration is None else iteration
        if (candidate, stop) in self.rungs:  # answered from the run folder
            return self.rungs[(candidate, stop)]
        self.spent += stop - self.at.get(candidate, 0)
        self.at[candidate] = stop
        record = {"iteration": stop, "AP50": self.curve(candidate, stop)}
        self.rungs[(candidate, stop)] = record
        return record


def _curve(candidate: str, iteration: int) -> float:
    """Validation AP50 rising to each candidate's final value; the pretrained one is ahead at every
    iteration (the screen nonetheless ranks it last)."""
    final = {"random-a": 0.30, "random-b": 0.32, "random-c": 0.31, "pretrained": 0.60}[candidate]
    return final * min(1.0, iteration / 100) ** 0.5


ORDER = ["random-a", "random-b", "random-c", "pretrained"]  # a screen that ranks the best one last


def test_the_race_finds_the_candidate_the_screen_ranked_last_and_spends_the_plan() -> None:
    from transferdet.select.race import run_race

    plan = plan_race(4, 200, 0.5)
    runs = FakeRuns(_curve, 200)
    result = run_race(plan, ORDER, runs)
    assert result.winner == "pretrained" and result.final["iteration"] == 200
    assert runs.spent == plan.cost  # every iteration the arithmetic counts, none twice
    assert set(result.stopped) == set(ORDER) and result.stopped["pretrained"] == "winner"
    assert all(len(result.scores[c]) >= 1 for c in ORDER) and len(result.scores["pretrained"]) == len(plan.rungs)


def test_a_killed_race_resumes_from_its_runs_to_the_same_pick_without_training_twice() -> None:
    from transferdet.select.race import run_race

    plan = plan_race(4, 200, 0.5)
    runs = FakeRuns(_curve, 200, kill_after=5)  # killed inside the second rung
    with pytest.raises(KeyboardInterrupt):
        run_race(plan, ORDER, runs)
    runs.kill_after = None
    resumed = run_race(plan, ORDER, runs)
    assert resumed.winner == "pretrained" and runs.spent == plan.cost


def test_a_candidate_that_fails_leaves_the_race_and_the_others_go_on() -> None:
    from transferdet.select.race import promote, run_race

    plan = plan_race(4, 200, 0.5)
    result = run_race(plan, ORDER, FakeRuns(_curve, 200, fails=("random-b",)))
    assert result.stopped["random-b"].startswith("failed: random-b: loss is nan")
    assert result.winner == "pretrained"
    assert promote(["a", "b", "c"], {"a": 0.5, "b": 0.5, "c": float("nan")}, 2) == ["a", "b"]  # ties: screen order
    assert promote(["b", "a"], {"a": 0.5, "b": 0.5}, 1) == ["b"]


def test_by_default_the_first_rung_is_past_the_start_of_the_warmup() -> None:
    """At budget 0.15 over eight candidates the budget affords all eight a first rung of 3 iterations,
    inside quick's warmup, where validation AP50 ordered real sources near chance (docs/results.md).
    By default the race takes the best screened that a first rung of 0.3 of the warmup (15) affords;
    ``min_first=1`` still asks for the old race of all eight."""
    from transferdet.select.flow import FIRST_RUNG_WARMUP_SHARE, SelectSettings, affordable
    from transferdet.train.recipes import load_recipe

    order = [f"m{i}" for i in range(8)]
    quick = load_recipe("quick")
    assert SelectSettings(quick).first_rung_floor() == 15 == FIRST_RUNG_WARMUP_SHARE * quick.warmup_iterations
    plan, dropped = affordable(order, 200, SelectSettings(quick, budget=0.15))
    assert plan.rungs == (20, 60) and dropped == order[3:]
    plan, dropped = affordable(order, 200, SelectSettings(quick, budget=0.15, min_first=1))
    assert plan.rungs == (3, 9) and dropped == []
    assert affordable(order, 200, SelectSettings(quick, budget=0.3))[0].rungs == (25, 75)  # 0.3 affords more
    no_warmup = load_recipe("quick", ["warmup_iterations=0"])
    assert SelectSettings(no_warmup).first_rung_floor() == 1


def test_select_help_states_the_default_first_rung(cli) -> None:
    """The option's help says the default the code uses (the share of the warmup, quick's iterations)."""
    from transferdet.select.flow import FIRST_RUNG_WARMUP_SHARE

    text = " ".join(cli("select", "--help").out.replace("│", " ").split())  # rich boxes and wraps the help
    assert f"Default: {FIRST_RUNG_WARMUP_SHARE:g} of the recipe's warmup (15 iterations in quick)" in text
