"""select's race that knows its noise, live (``--race tolerant``; the rule pre-registered in
benchmarks/real/README.md, "select's race that knows its noise", and replayed by
:func:`~transferdet.select.tie_rule.replay`): plain successive halving's rungs (Jamieson & Talwalkar,
AISTATS 2016), where a rung eliminates only the candidates that trail the leader by more than their
tolerance and the race stops when more are tied than the next rung affords; the pick is the tied set's
first in ``--prefer``'s order. The saved budget is spent only where it can change the answer.

Like :func:`~transferdet.select.race.run_race` the race's state is its runs (and the store): started
again after a kill, every rung answers from them and every decision is taken again the same way.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from transferdet.errors import TransferdetError
from transferdet.select.halving import Plan
from transferdet.select.noise import SE_MULTIPLE
from transferdet.select.race import RaceResult, TrainRung
from transferdet.select.tie_rule import decide, preferred

# (candidates, rung iteration, seed offset >= 1) -> each one's record, as a TrainRung's, of a replicate
# run: the same candidate and validation images, another seed for initialisation and data order
Replicate = Callable[[list[str], int, int], dict[str, dict]]
Costs = Callable[[list[str]], dict[str, dict]]  # candidates -> their inference cost records


@dataclass
class Noise:
    """What a difference is judged by: ``tolerance`` (``--tolerance``), the seed noise (the sd of a
    paired difference of two single fine-tunes, and where it comes from) and the image noise (the
    standard error of two candidates' difference at a rung, by a paired bootstrap over images)."""

    tolerance: float
    sd_seed: float
    source: str
    image_se: Callable[[str, str, int], float] = lambda leader, candidate, rung: 0.0

    def of(self, leader: str, candidate: str, rung: int) -> float:
        """``max(--tolerance, 2 * sqrt(sd_seed**2 + se_image**2))``; 0 for the leader itself."""
        if candidate == leader:
            return 0.0
        se = self.image_se(leader, candidate, rung)
        return max(self.tolerance, SE_MULTIPLE * math.sqrt(self.sd_seed**2 + se**2))

    def as_dict(self) -> dict:
        image = "paired bootstrap over the validation images, 1000 replicates"
        return {"tolerance_option": self.tolerance, "sd_seed": round(self.sd_seed, 5), "seed_source": self.source,
                "se_multiple": SE_MULTIPLE, "image": image}  # fmt: skip


@dataclass
class TolerantResult(RaceResult):
    tied: list[str] = field(default_factory=list)  # the pick first, then the others tied with it
    stop: str = ""  # "last rung" | "tie at iteration r" | "one left at iteration r"
    tolerance: dict[str, float] = field(default_factory=dict)  # at the last decision, per candidate
    spent: int = 0  # iterations trained, replicates and the pick's completion included
    saved: int = 0  # the plan's cost less what was spent
    replicates: dict[str, dict[str, float]] = field(default_factory=dict)  # candidate -> {seed offset: score}


@dataclass
class TolerantRace:
    plan: Plan
    order: list[str]  # the screen's order, best first
    train_rung: TrainRung
    noise: Noise
    prefer: str = "card"
    costs: Costs = lambda names: {}
    replicate: Replicate | None = None
    replicates: int | None = None  # --replicates K: measure the seed noise at the first rung
    target: str = "AP50"
    on_tie: Callable[[list[str], float, int], None] | None = None  # (tied, tolerance, rung) at a tie-stop
    reached: dict[tuple[str, int], int] = field(default_factory=dict)  # (candidate, offset) -> replicate's rung

    def run(self) -> TolerantResult:
        result = TolerantResult(scores={c: {} for c in self.order})
        alive, previous = list(self.order), 0
        for index, rung in enumerate(self.plan.rungs):
            scores = self._rung(result, alive, rung)
            result.spent += len(alive) * (rung - previous)
            previous = rung
            if index == 0 and self.replicates:
                self._measure(result, scores, rung)
            keep = self.plan.survivors[index + 1] if index + 1 < len(self.plan.rungs) else None
            leader = max(scores, key=lambda c: (scores[c], -self.order.index(c)))
            result.tolerance = {c: self.noise.of(leader, c, rung) for c in scores}
            decision = decide(scores, result.tolerance, keep)
            for candidate in alive:
                if candidate not in decision.tied:
                    result.stopped.setdefault(candidate, f"rung {rung}")
            alive = decision.tied
            if decision.stop:
                break
        alive = self._settle(result, scores, alive, rung)
        return self._finish(result, alive, rung, keep)

    def _rung(self, result: TolerantResult, alive: list[str], rung: int) -> dict[str, float]:
        """Every alive candidate brought to ``rung``; the scored ones (a failed one leaves the race)."""
        records, scores = self.train_rung(alive, rung), {}
        for candidate in alive:
            if "error" in records[candidate]:
                result.stopped[candidate] = f"failed: {records[candidate]['error']}"
                continue
            value = result.scores[candidate][rung] = records[candidate].get(self.target)
            if value is not None and not math.isnan(value):
                scores[candidate] = value
        if not scores:
            raise TransferdetError(f"no candidate has a {self.target} at rung {rung}: every one failed or scored none")
        return scores

    def _replicate(self, result: TolerantResult, names: list[str], rung: int, offset: int) -> dict[str, float]:
        """``names`` trained again to ``rung`` with seed + ``offset``; what it cost is spent."""
        if self.replicate is None:
            raise TransferdetError("this race has no way to train replicates")
        records = self.replicate(names, rung, offset)
        found = {}
        for name in names:
            result.spent += rung - self.reached.get((name, offset), 0)
            self.reached[(name, offset)] = rung
            value = records[name].get(self.target) if "error" not in records[name] else None
            if value is not None and not math.isnan(value):
                found[name] = result.replicates.setdefault(name, {})[f"+{offset}@{rung}"] = value
        return found

    def _measure(self, result: TolerantResult, scores: dict[str, float], rung: int) -> None:
        """``--replicates K``: the top two trained again K times to the first rung; the seed noise is then
        the sd of a paired difference, sqrt(2) x their pooled sd across seeds (2K degrees of freedom)."""
        top = sorted(scores, key=lambda c: (-scores[c], self.order.index(c)))[:2]
        values = {c: [scores[c]] for c in top}
        for offset in range(1, self.replicates + 1):
            for name, value in self._replicate(result, top, rung, offset).items():
                values[name].append(value)
        pooled = [(v, len(v) - 1) for v in values.values() if len(v) > 1]
        if not pooled:
            raise TransferdetError("--replicates: no replicate of the first rung's leaders scored")
        variance = sum(_variance(v) * df for v, df in pooled) / sum(df for _, df in pooled)
        self.noise.sd_seed = math.sqrt(2 * variance)
        self.noise.source = (f"measured on this data: {self.replicates} replicate(s) of {', '.join(top)} at iteration "
                             f"{rung} (sqrt(2) x their pooled sd over seeds)")  # fmt: skip

    def _settle(self, result: TolerantResult, scores: dict[str, float], tied: list[str], rung: int) -> list[str]:
        """Where one candidate is left and the runner-up trails it by one to two tolerances, both are
        trained again with seed + 1 to this rung when the saved budget affords it, and the decision
        takes the mean of the two seeds; otherwise nothing more is spent."""
        ranked = sorted(scores, key=lambda c: (-scores[c], self.order.index(c)))
        if len(tied) != 1 or len(ranked) < 2:
            return tied
        leader, runner = ranked[:2]
        gap, tolerance = scores[leader] - scores[runner], result.tolerance[runner]
        left = self.plan.cost - result.spent - (self.plan.total - rung)
        costs = sum(rung - self.reached.get((c, 1), 0) for c in (leader, runner))
        if not (tolerance < gap <= 2 * tolerance) or costs > left or self.replicate is None:
            return tied
        again = self._replicate(result, [leader, runner], rung, 1)
        if len(again) < 2:
            return tied
        means = {c: (scores[c] + again[c]) / 2 for c in (leader, runner)}
        first = max(means, key=lambda c: (means[c], -self.order.index(c)))
        result.tolerance = {c: self.noise.of(first, c, rung) for c in means}
        decision = decide(means, result.tolerance, None)
        result.stopped.pop(runner, None)
        return decision.tied

    def _finish(self, result: TolerantResult, tied: list[str], rung: int, keep: int | None) -> TolerantResult:
        """The pick (the tied set's first by ``--prefer``) finished to the full recipe."""
        costs = self.costs(tied) if self.prefer != "card" and len(tied) > 1 else {}
        result.tied = preferred(tied, self.order, self.prefer, costs)
        pick = result.winner = result.tied[0]
        if keep is None:
            result.stop = "last rung"
        elif len(tied) > 1:
            result.stop = f"tie at iteration {rung}"
            if self.on_tie is not None:
                self.on_tie(result.tied, max(result.tolerance[c] for c in tied[1:]), rung)
        else:
            result.stop = f"one left at iteration {rung}"
        for other in result.tied[1:]:
            result.stopped[other] = f"tied with the pick at iteration {rung}"
        result.final = self.train_rung([pick], None)[pick]
        if "error" in result.final:
            raise TransferdetError(f"{pick}: the pick's run failed to finish: {result.final['error']}")
        result.stopped[pick] = "winner"
        result.spent += self.plan.total - rung
        result.saved = self.plan.cost - result.spent
        return result


def _variance(values: list[float]) -> float:
    mean = sum(values) / len(values)
    return sum((v - mean) ** 2 for v in values) / (len(values) - 1)
