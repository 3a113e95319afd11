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
