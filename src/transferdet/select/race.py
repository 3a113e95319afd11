"""Running a planned race (:mod:`~transferdet.select.halving`): every survivor trained to the
rung, the best ones promoted, the winner completed.

The race's state is its candidates' run folders: each keeps its checkpoint and the validation
result of every rung it reached (``rungs.json``). A race killed anywhere and started again asks
each run for its rung: one already evaluated answers from its folder, one checkpointed past the
rung only evaluates, the rest resume training. Promotion is synchronous and breaks ties by the
screen's order, so the same results always give the same survivors and the same pick (ASHA's
asynchronous promotion depends on the order in which runs finish, and does not).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from transferdet.errors import TransferdetError
from transferdet.select.halving import Plan

# (candidates, iteration to stop at, or None for the full schedule) -> each one's record: the rung's
# {"AP50", ...}, or the finished run's metrics for None; {"error": text} where its training failed
TrainRung = Callable[[list[str], int | None], dict[str, dict]]


@dataclass
class RaceResult:
    """Each candidate's validation score at each rung it reached, where it stopped, the pick."""

    scores: dict[str, dict[int, float | None]] = field(default_factory=dict)
    stopped: dict[str, str] = field(default_factory=dict)  # candidate -> "rung N" | "failed: ..." | "winner"
    winner: str | None = None
    final: dict = field(default_factory=dict)  # the winner's finished run's metrics


def promote(order: list[str], scores: dict[str, float | None], keep: int) -> list[str]:
    """The ``keep`` best by score (higher is better); ties and equal scores go by ``order`` (the
    screen's ranking); a candidate without a score (failed, or AP undefined) is never promoted."""
    scored = [c for c in order if c in scores and scores[c] is not None and not math.isnan(scores[c])]
    return sorted(scored, key=lambda c: (-scores[c], order.index(c)))[:keep]


def run_race(plan: Plan, order: list[str], train_rung: TrainRung, target: str = "AP50") -> RaceResult:
    """Race ``order`` (the screen's ranking, best first) under ``plan``: at each rung every
    survivor is trained to it at once (an executor may run them side by side), then the best go on.
    A candidate whose training fails is recorded as failed and leaves the race; the others go on."""
    if len(order) != plan.candidates:
        raise TransferdetError(f"the plan is for {plan.candidates} candidates, not {len(order)}")
    result = RaceResult(scores={c: {} for c in order})
    alive = list(order)
    for index, rung in enumerate(plan.rungs):
        records = train_rung(alive, rung)
        rung_scores: dict[str, float | None] = {}
        for candidate in alive:
            if "error" in records[candidate]:
                result.stopped[candidate] = f"failed: {records[candidate]['error']}"
                continue
            rung_scores[candidate] = result.scores[candidate][rung] = records[candidate].get(target)
        keep = plan.survivors[index + 1] if index + 1 < len(plan.rungs) else 1
        promoted = promote(order, rung_scores, keep)
        for candidate in alive:
            if candidate not in promoted:
                result.stopped.setdefault(candidate, f"rung {rung}")
        alive = promoted
        if not alive:
            raise TransferdetError(f"no candidate has a {target} at rung {rung}: every one failed or scored none")
    result.winner = alive[0]
    result.final = train_rung([result.winner], None)[result.winner]
    if "error" in result.final:
        raise TransferdetError(f"{result.winner}: the winner's run failed to finish: {result.final['error']}")
    result.stopped[result.winner] = "winner"
    return result
