"""``transferdet select``: screen every candidate with rank's recommended ranker, race the best
ones that the budget affords (:mod:`~transferdet.select.halving`, :mod:`~transferdet.select.race`)
on a validation split carved from the training images, and finish the winner's run: that run
folder is the answer, ready for ``eval``, ``predict`` and ``zoo convert``."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transferdet.atomic import atomic_write_bytes
from transferdet.data.options import DataArgs
from transferdet.errors import TransferdetError
from transferdet.models.inference_cost import FLOPS_CONVENTION
from transferdet.models.model_card import ModelEntry
from transferdet.models.specs import ModelSpec
from transferdet.select.costs import race_costs, write_pareto
from transferdet.select.curves import write_curves
from transferdet.select.halving import Plan, plan_race
from transferdet.select.judging import check_judging, judged, race_noise, tolerant_race
from transferdet.select.race import RaceResult, TrainRung, run_race
from transferdet.select.race_page import write_race_page
from transferdet.select.rung_jobs import RaceRuns, check_race_folders, inline_trainer, race_base, run_folder
from transferdet.select.tolerant_race import Noise
from transferdet.train.engine import job_data
from transferdet.train.job import TrainJob
from transferdet.train.recipes import Recipe
from transferdet.train.schedule import total_iterations
from transferdet.transfer.combined import card_then_metric
from transferdet.transfer.rank import IMAGENET_TOP1, RankSettings, rank
from transferdet.transfer.recommended import METRIC as RECOMMENDED_METRIC

RECOMMENDED = RECOMMENDED_METRIC  # rank's recommended metric (on its default layer, RankSettings' default)
SCREEN_SCORES = (RECOMMENDED, "knn", "model_size", IMAGENET_TOP1)  # with the sceptic's baselines beside it
# The shortest first rung by default, as a share of the recipe's warmup: on the real benchmark's
# targets a source's validation AP50 at iteration 5 or 10 of quick's 50-iteration warmup ordered the
# sources as their full fine-tunes near chance (Kendall tau-b 0.0-0.36), from 15 on well (0.57-0.79;
# docs/results.md, "How early does a rung see the final order?", benchmarks/real/early_curve.py).
FIRST_RUNG_WARMUP_SHARE = 0.3

JobCallback = Callable[[str, Any, str], None]  # the bench runner's (event, job, detail)
Trainer = Callable[[RaceRuns, list[str]], TrainRung]  # a race's runs and order -> its train_rung
# candidates -> (their order, best first; each one's screen scores by metric)
Screen = Callable[[list[str]], tuple[list[str], dict[str, dict[str, float | None]]]]


@dataclass
class SelectSettings:
    recipe: Recipe
    detector: str = "fcos"
    budget: float = 0.3
    eta: int = 3
    min_first: int | None = None  # the shortest first rung, in iterations (None: first_rung_floor's default)
    target: str = "AP50"
    seed: int = 0
    device: str = "cpu"
    rank: RankSettings = field(default_factory=RankSettings)
    executor: str = "local"  # or "ray" (a local cluster, or the one at ``address``)
    address: str | None = None
    threads: int | None = None  # torch threads per rung job (Ray's default is one)
    data_args: DataArgs = field(default_factory=DataArgs)  # how the dataset is read (the data options)
    plugins: list[str] = field(default_factory=list)
    # candidate name -> its listed entry (spec, stated normalisation); a name not here is its own spec
    entries: dict[str, ModelEntry] = field(default_factory=dict)
    cache_dir: Path | None = None  # the screen's feature cache (none where None, as rank's default)
    latency_runs: int = 30  # each raced candidate's batch-1 latency: this many timed runs, or
    latency_seconds: float = 10.0  # this long, whichever ends first (select/costs.py)
    race: str = "halving"  # or "tolerant": the race that knows its noise (select/tolerant_race.py)
    tolerance: float = 0.0  # AP50 below which a difference is a tie, whatever the noise
    prefer: str = "card"  # a tie's pick: card (the screen's order), speed or size
    replicates: int | None = None  # measure the seed noise with K replicates of the first rung's top two

    def first_rung_floor(self) -> int:
        """The shortest first rung: ``min_first``, else FIRST_RUNG_WARMUP_SHARE of the recipe's warmup
        (15 iterations in quick; 1 without a warmup). A race that cannot afford it races fewer."""
        if self.min_first is not None:
            return self.min_first
        return max(1, math.ceil(FIRST_RUNG_WARMUP_SHARE * self.recipe.warmup_iterations))

    def probe(self, data: Path) -> TrainJob:
        """A training job that reads ``data`` as the race's runs do (for its splits, never run)."""
        args = self.data_args
        return TrainJob(data, "unused", self.detector, self.recipe, Path("unused"), seed=self.seed, format=args.format,
                        train_split=args.split, options=args.read, on_bad_box=args.on_bad_box,
                        carve_validation=True, split_seed=args.split_seed)  # fmt: skip

    def spec(self, candidate: str) -> str | ModelSpec:
        """What rank and training build for ``candidate``."""
        return self.entries[candidate].model_spec() if candidate in self.entries else candidate

    def runs(self, data: Path, out: Path, on_job: JobCallback | None = None) -> RaceRuns:
        """Where and how the race's rung jobs run (their shared definition fields)."""
        overrides = self.recipe.model_dump(mode="json", exclude={"name"})
        base = race_base(data, self.data_args, self.detector, self.recipe.name, overrides, self.seed, self.device,
                         self.plugins)  # fmt: skip
        # a detector source races as a whole detector unless its entry says body (rung_jobs reads "transfer")
        specs = {name: (e.spec, {**{k: v for k, v in e.card().items() if k in ("mean", "std")},
                                 **({"transfer": "whole"} if e.whole_detector() else {})})
                 for name, e in self.entries.items()}  # fmt: skip
        return RaceRuns(out, base, specs, self.executor, self.address, self.threads, on_job)


def race_length(data: Path, settings: SelectSettings) -> int:
    """The recipe's length in iterations over the training images left once the validation split
    is carved; a one-line error where there are too few images to carve one."""
    _, records, _, validation = job_data(settings.probe(data))
    if validation is None:
        raise TransferdetError(f"{data}: too few training images to carve a validation split from (need at least 2)")
    return total_iterations(settings.recipe, len(records))


def rank_screen(data: Path, settings: SelectSettings) -> Screen:
    """Order as rank's recommended line does: the combined ranker (the card's top-1, then the
    recommended metric among equal top-1; the metric alone unless every candidate states a card);
    candidates the metric cannot score last, in the given order."""

    def screen(candidates: list[str]) -> tuple[list[str], dict[str, dict[str, float | None]]]:
        specs = [settings.spec(c) for c in candidates]
        named = {str(spec): c for spec, c in zip(specs, candidates, strict=True)}
        args = settings.data_args
        rows = rank(data, specs, list(SCREEN_SCORES), split=args.split, settings=settings.rank, format=args.format,
                    options=args.read, cache_dir=settings.cache_dir)  # fmt: skip
        scores = {c: {r["metric"]: r["score"] for r in rows if named[r["model"]] == c} for c in candidates}
        scored = {c: s[RECOMMENDED] for c, s in scores.items() if s.get(RECOMMENDED) is not None}
        first = card_then_metric({c: s.get(IMAGENET_TOP1) for c, s in scores.items()}, scored)
        order = sorted(candidates, key=lambda c: (c not in first, -first.get(c, 0.0), candidates.index(c)))
        return order, scores

    return screen


def affordable(order: list[str], total: int, settings: SelectSettings) -> tuple[Plan, list[str]]:
    """The plan for the most candidates (best screened first) the budget can race, and those left out."""
    error = None
    for count in range(len(order), 1, -1):
        try:
            plan = plan_race(count, total, settings.budget, settings.eta, settings.first_rung_floor(), of=len(order))
            return plan, order[count:]
        except TransferdetError as found:
            error = error or found
    raise error or TransferdetError("select needs at least two candidates")


Announce = Callable[[Plan, list[str], Noise], None]  # the plan, the candidates left out, the noise; before training


def select(
    data: Path, candidates: list[str], settings: SelectSettings, out: Path,
    screen: Screen | None = None, announce: Announce | None = None, on_job: JobCallback | None = None,
    trainer: Trainer = inline_trainer, on_tie: Callable[[list[str], float, int], None] | None = None,
) -> dict:  # fmt: skip
    """Screen, plan, race, finish the winner; writes ``race.json`` in ``out`` and returns it. The
    rungs' runs train as ``trainer`` runs them (in this process by default; the CLI's go through
    the bench runner and the race's store, :func:`~transferdet.select.runner.store_trainer`)."""
    if len(candidates) < 2:
        raise TransferdetError("select needs at least two candidates (--models)")
    check_judging(settings)
    total = race_length(data, settings)
    affordable(candidates, total, settings)  # a budget too small for any race fails before the screen
    order, scores = (screen or rank_screen(data, settings))(candidates)
    plan, dropped = affordable(order, total, settings)
    raced = order[: plan.candidates]
    runs = settings.runs(data, out, on_job)
    check_race_folders(runs, raced)  # a folder holding another race's runs: an error before any training
    noise = race_noise(data, out, raced, settings)
    if announce is not None:
        announce(plan, dropped, noise)
    if settings.race == "tolerant":
        costs_of = lambda names: race_costs(data, out, raced, names, settings)  # noqa: E731
        result = tolerant_race(plan, raced, runs, trainer(runs, raced), lambda r: trainer(r, raced), noise, costs_of,
                               settings, on_tie)  # fmt: skip
    else:
        result = run_race(plan, raced, trainer(runs, raced), settings.target)
    judgement = judged(result, plan, noise)
    trained = [c for c in raced if any(v is not None for v in result.scores.get(c, {}).values())]
    costs = race_costs(data, out, raced, trained, settings)  # a candidate that failed to train has no run
    summary = _summary(result, judgement, plan, order, scores, costs, settings, run_folder(out, raced, result.winner))
    threads = next((c["threads"] for c in costs.values()), None)
    summary["inference"] = {"batch": 1, "threads": threads, "flops": FLOPS_CONVENTION}
    summary["curves"] = str(write_curves(summary, out / "race.png"))
    pareto = write_pareto(summary, out / "pareto.png")
    summary["pareto"] = None if pareto is None else str(pareto)
    summary["page"] = str(write_race_page(summary, out))
    atomic_write_bytes(out / "race.json", json.dumps(summary, indent=1).encode())
    return summary


def _summary(
    result: RaceResult, judgement: dict, plan: Plan, order: list[str], scores: dict, costs: dict,
    settings: SelectSettings, winner_run: Path,
) -> dict:  # fmt: skip
    """race.json's content before its figures: the pick, the plan and what was spent, the noise
    judgement, and every candidate's screen scores, rung scores, where it stopped and its cost."""
    total, spent, everyone = plan.total, judgement["spent"], max(plan.everyone, plan.candidates)
    return {
        "winner": result.winner,
        "winner_run": str(winner_run),
        "final": result.final,
        "plan": {"rungs": list(plan.rungs), "survivors": list(plan.survivors), "eta": plan.eta, "total": total},
        "cost": {"iterations": spent, "fraction_of_all": round(spent / (everyone * total), 4), "planned": plan.cost},
        "race": settings.race,
        **judgement,
        "target": settings.target,
        "budget": settings.budget,
        "seed": settings.seed,
        "candidates": [
            {
                "model": c,
                "screen": scores.get(c, {}),
                "rungs": {str(k): v for k, v in result.scores.get(c, {}).items()},
                "stopped": result.stopped.get(c, "not raced: the budget races the best screened only"),
                **({"replicates": result.replicates[c]} if getattr(result, "replicates", {}).get(c) else {}),
                **costs.get(c, {}),
            }
            for c in order
        ],  # fmt: skip
    }
