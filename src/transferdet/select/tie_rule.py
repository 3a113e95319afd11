"""select's race that knows its noise (issue 41; pre-registered in benchmarks/real/README.md, "select's
race that knows its noise"): successive halving (Jamieson & Talwalkar, AISTATS 2016) whose rungs
eliminate only the candidates that trail the leader by more than the tolerance, and which stops when
more candidates are tied than the plan's next rung affords. Pure functions of the rung's scores.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from transferdet.select.halving import race_cost

PREFER = ("card", "speed", "size")


@dataclass(frozen=True)
class Decision:
    tied: list[str]  # the leader and every candidate within the tolerance of it, best first
    stop: bool  # True: the race ends here (see decide)


def decide(scores: Mapping[str, float], tolerance: float | Mapping[str, float], keep: int | None) -> Decision:
    """The rung's decision: ``keep`` is the plan's next survivor count (None at the last rung)."""
    ranked = sorted(scores, key=lambda c: -scores[c])
    lead = scores[ranked[0]]
    allowed = tolerance if isinstance(tolerance, Mapping) else dict.fromkeys(ranked, tolerance)
    tied = [c for c in ranked if c == ranked[0] or lead - scores[c] <= allowed[c] + 1e-12]
    # the last rung, more ties than the next rung affords, or one candidate left (it is the pick: going
    # on alone to the next rung is the same training as its completion)
    return Decision(tied, keep is None or len(tied) > keep or len(tied) == 1)


def preferred(tied: Sequence[str], screen: Sequence[str], prefer: str, costs: Mapping[str, dict]) -> list[str]:
    """The tied set in ``prefer``'s order: the screen's (``card``), latency (``speed``), parameters
    (``size``); the screen's order breaks ties and places candidates without a cost last."""
    if prefer not in PREFER:
        raise ValueError(f"--prefer {prefer!r}: choose from {', '.join(PREFER)}")
    key = {"speed": "latency_ms", "size": "params"}.get(prefer)
    inf = float("inf")

    def rank(c: str) -> tuple[float, int]:
        value = costs.get(c, {}).get(key) if key else None
        return (inf if key and value is None else (value or 0.0), screen.index(c))

    return sorted(tied, key=rank)


@dataclass(frozen=True)
class Replay:
    """What the rule does on a race's stored rung scores."""

    pick: str
    tied: list[str]
    stop_at: int  # the rung iteration of the last decision
    tie_stop: bool  # stopped early on a tie
    cost: int  # iterations trained, the pick's completion included


def replay(summary: dict, tolerance: float, prefer: str = "card") -> Replay:
    """The rule applied to a stored race's summary (its plan and every candidate's rung scores, in the
    screen's order): the rungs it would have trained, its pick and its cost. A rung's scores exist
    for every candidate the rule keeps, since it keeps no more than plain halving kept."""
    rungs, entering, total = summary["plan"]["rungs"], summary["plan"]["survivors"], summary["plan"]["total"]
    screen = [row["model"] for row in summary["candidates"]]
    scores = {row["model"]: row["rungs"] for row in summary["candidates"]}
    alive = [c for c in screen if scores[c].get(str(rungs[0])) is not None]
    counts = []
    for index, rung in enumerate(rungs):
        counts.append(len(alive))
        keep = entering[index + 1] if index + 1 < len(rungs) else None
        decision = decide({c: scores[c][str(rung)] for c in alive}, tolerance, keep)
        if decision.stop:
            pick = preferred(decision.tied, screen, prefer, {})[0]
            cost = race_cost(tuple(rungs[: index + 1]), tuple(counts), total)
            return Replay(pick, decision.tied, rung, keep is not None and len(decision.tied) > 1, cost)
        alive = decision.tied
    raise AssertionError("the last rung always decides")
