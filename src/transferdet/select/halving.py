"""The arithmetic of a synchronous successive-halving race (Jamieson & Talwalkar, "Non-stochastic
Best Arm Identification and Hyperparameter Optimization", AISTATS 2016; the bracket of Hyperband,
Li et al., JMLR 2017), with rungs that are points of one full-length run per candidate.

Every candidate's run has the recipe's full schedule of ``total`` iterations; rung ``i`` stops it
at iteration ``r_i = first * eta**i`` and evaluates it on the validation split; the best
``1/eta`` go on (at least one), resuming the same run, so no iteration is trained twice. The
winner is then completed to ``total``. The cost of a race is every iteration trained, the
winner's completion included; the budget is that cost as a fraction of fine-tuning every
candidate in full (``candidates * total``).

Pure functions of integers: the race's plan is decided before any training, and the same inputs
give the same plan.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from transferdet.errors import TransferdetError


@dataclass(frozen=True)
class Plan:
    """Rung iterations (increasing, each below ``total``), survivors entering each rung, and the
    iterations the race trains in all; ``everyone``: the candidates the budget is a fraction of
    (the raced ones and those the screen left out; 0: only the raced ones)."""

    candidates: int
    total: int
    eta: int
    rungs: tuple[int, ...]
    survivors: tuple[int, ...]
    everyone: int = 0

    @property
    def cost(self) -> int:
        return race_cost(self.rungs, self.survivors, self.total)

    @property
    def fraction(self) -> float:
        """The cost as a fraction of fine-tuning every candidate in full, the left-out ones included."""
        return self.cost / (max(self.everyone, self.candidates) * self.total)


def survivors(candidates: int, eta: int, rungs: int) -> tuple[int, ...]:
    """How many candidates enter each rung: all, then ``ceil(n / eta**i)``, never fewer than one."""
    return tuple(max(1, math.ceil(candidates / eta**i)) for i in range(rungs))


def race_cost(rungs: tuple[int, ...], entering: tuple[int, ...], total: int) -> int:
    """Iterations trained: each rung's entrants from the previous rung to this one, then the
    winner from the last rung to ``total``."""
    cost, previous = 0, 0
    for rung, count in zip(rungs, entering, strict=True):
        cost += count * (rung - previous)
        previous = rung
    return cost + (total - previous)


def _rungs(first: int, eta: int, count: int) -> tuple[int, ...]:
    return tuple(first * eta**i for i in range(count))


def plan_race(
    candidates: int, total: int, budget: float, eta: int = 3, min_first: int = 1, of: int | None = None
) -> Plan:  # fmt: skip
    """The race with the longest first rung the budget affords: ``ceil(log_eta(candidates))``
    rungs (one per halving down to a single survivor, at least two), the first at least
    ``min_first`` iterations, the last below ``total``. The budget is a fraction of fine-tuning
    ``of`` candidates in full (all there are, where the screen left some out of the race; default:
    the ``candidates`` raced). A one-line error when none fits."""
    if candidates < 2:
        raise TransferdetError(f"a race needs at least two candidates (got {candidates})")
    if eta < 2:
        raise TransferdetError(f"eta must be at least 2 (got {eta})")
    if not 0 < budget <= 1:
        raise TransferdetError(f"--budget {budget:g}: a fraction of fine-tuning every candidate, in (0, 1]")
    count = max(2, math.ceil(math.log(candidates, eta) - 1e-9))
    entering = survivors(candidates, eta, count)
    everyone = max(of or candidates, candidates)
    allowed = budget * everyone * total
    best = None
    first = max(1, min_first)
    while first * eta ** (count - 1) < total and race_cost(_rungs(first, eta, count), entering, total) <= allowed:
        best = first
        first += 1
    if best is None:
        cheapest = race_cost(_rungs(max(1, min_first), eta, count), entering, total) / (everyone * total)
        raise TransferdetError(
            f"--budget {budget:g} cannot afford {count} rungs of {candidates} candidates over {total} iterations "
            f"(the shortest race costs {cheapest:.2f} of fine-tuning them all; raise --budget or race fewer)"
        )
    return Plan(candidates, total, eta, _rungs(best, eta, count), entering, everyone)
