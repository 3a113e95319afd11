"""What a race judges its differences by, wired to one race's runs: the tolerance (``--tolerance``,
the shipped or measured seed noise, each pair's image noise at the rung), and the race that uses it
(``--race tolerant``, :mod:`~transferdet.select.tolerant_race`) or the tie statement plain successive
halving's pick gets (``--race halving``, the default: its eliminations do not change)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from transferdet.select.halving import Plan
from transferdet.select.image_noise import ImageNoise
from transferdet.select.noise import shipped_noise
from transferdet.select.race import RaceResult, TrainRung
from transferdet.select.rung_jobs import RaceRuns, run_folder
from transferdet.select.tolerant_race import Noise, TolerantRace, TolerantResult

RACES = ("halving", "tolerant")


def check_judging(settings) -> None:  # noqa: ANN001 - SelectSettings
    """Bad judging options are one-line errors before anything runs."""
    from transferdet.errors import TransferdetError
    from transferdet.select.tie_rule import PREFER

    if settings.race not in RACES:
        raise TransferdetError(f"--race {settings.race!r}: choose {' or '.join(RACES)}")
    if not settings.tolerance >= 0:
        raise TransferdetError(f"--tolerance {settings.tolerance:g}: an AP50 difference, 0 or more")
    if settings.prefer not in PREFER:
        raise TransferdetError(f"--prefer {settings.prefer!r}: choose {', '.join(PREFER)}")
    if settings.replicates is not None and settings.replicates < 1:
        raise TransferdetError(f"--replicates {settings.replicates}: at least 1 (leave it out for the shipped noise)")
    if settings.race == "halving" and (settings.prefer != "card" or settings.replicates is not None):
        raise TransferdetError("--prefer and --replicates steer the tolerant race: add --race tolerant")


def race_noise(data: Path, out: Path, raced: list[str], settings) -> Noise:  # noqa: ANN001 - SelectSettings
    """The race's noise: the shipped seed noise (all architectures) until ``--replicates`` measures
    it, and the image noise of its runs' validation predictions."""
    from transferdet.train.engine import job_data

    dataset, _, _, validation = job_data(settings.probe(data))
    folders = {c: run_folder(out, raced, c) for c in raced}
    images = ImageNoise(folders, dataset.records(validation), dataset.classes, settings.seed)
    shipped = shipped_noise()
    source = f"shipped: {shipped['provenance']['end']}"
    return Noise(settings.tolerance, float(shipped["end"]["all"]["sd_difference"]), source, images)


def tolerant_race(
    plan: Plan, raced: list[str], runs: RaceRuns, train_rung: TrainRung, replica: Callable[[RaceRuns], TrainRung],
    noise: Noise, costs: Callable[[list[str]], dict[str, dict]], settings, on_tie=None,  # noqa: ANN001
) -> TolerantResult:  # fmt: skip
    """Run the tolerant race; ``replica`` gives a replicate's runs their trainer."""

    def replicate(names: list[str], rung: int, offset: int) -> dict[str, dict]:
        return replica(runs.replica(offset))(names, rung)

    race = TolerantRace(plan, raced, train_rung, noise, settings.prefer, costs, replicate, settings.replicates,
                        settings.target, on_tie)  # fmt: skip
    return race.run()


def judged(result: RaceResult | TolerantResult, plan: Plan, noise: Noise) -> dict:
    """The summary's noise fields: for the tolerant race its own; for plain halving the tie its pick
    is in at the last rung (the candidates there within the tolerance of it; none eliminated by it)."""
    if isinstance(result, TolerantResult):
        tied, stop, tolerance = result.tied, result.stop, result.tolerance
        spent, saved = result.spent, result.saved
    else:  # at the last rung where the pick met others: those within the tolerance of it, either side
        met = [r for r in plan.rungs if sum(s.get(r) is not None for s in result.scores.values()) > 1]
        last = (met or list(plan.rungs))[-1]
        scores = {c: s[last] for c, s in result.scores.items() if s.get(last) is not None}
        tolerance = {c: noise.of(result.winner, c, last) for c in scores}
        near = [c for c in scores if c != result.winner and abs(scores[c] - scores[result.winner]) <= tolerance[c]]
        tied = [result.winner, *sorted(near, key=lambda c: -scores[c])]
        stop, spent, saved = "last rung", plan.cost, 0
    others = [tolerance[c] for c in tied[1:]] or [v for v in tolerance.values() if v > 0]
    return {
        "noise": noise.as_dict(),
        "tolerance": {
            "value": round(max(others), 4) if others else None,
            "per_candidate": {c: round(v, 4) for c, v in tolerance.items()},
        },  # fmt: skip
        "tied": tied,
        "stop": stop,
        "spent": spent,
        "saved": saved,
    }
