"""The noise-aware race replayed on the stored races (issue 41, the pre-registered rule of README.md,
"select's race that knows its noise"): no training, only the stored rung scores.

    .venv/bin/python benchmarks/real/tie_replay.py

For each stored race (select-shelf: 10 races at budget 0.3; select-curve: 12 races at three budgets)
the rule's pick and cost with the shipped seed noise as its only noise (the stored races hold no
per-image records: se_image = 0), each pick's regret in test AP50 against the best source by the
reference fine-tunes, beside plain successive halving (the stored pick), the card, rank's
recommended line, k-NN, model size, random and fine-tune-all; paired differences (the rule minus
each) with 90% bootstrap intervals over targets, races and trials (bench/regret.py). Also: the
races it stopped on a tie, and whether the declared tie was real (the tied set's reference means
within the tolerance of the best of them).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from transferdet.bench.regret import RACE, RaceOutcome, regret_rows
from transferdet.bench.select_report import race_outcomes, reference_trials
from transferdet.bench.store import STORE_FILE, Store
from transferdet.select.noise import noise_tolerance
from transferdet.select.tie_rule import replay

HERE = Path(__file__).resolve().parent
STORES = {"select-shelf": "shelf", "select-curve": "out"}  # race store -> reference store
HALVING = "plain halving (stored)"


def _copies(names: list[str]) -> Path:
    """The stores of ``names`` copied into a temporary folder (opening a store may migrate it: the
    committed files stay untouched)."""
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp())
    for name in names:
        (folder / name).mkdir()
        shutil.copy(HERE / name / STORE_FILE, folder / name / STORE_FILE)
    return folder


def replayed(copies: Path, folder: str, tolerance: float) -> tuple[list[RaceOutcome], list[str], list[float]]:
    """The stored races with the rule's pick as the race's, a line per race on what it did, and
    plain halving's stored cost of each."""
    trials = reference_trials(copies / STORES[folder])
    with Store(copies / folder / STORE_FILE) as store:
        summaries = {(r["dataset"], r["seed"], r["summary"]["budget"]): r["summary"] for r in store.races()}
    outcomes, lines, halving = [], [], []
    for outcome in race_outcomes(copies / folder):
        halving.append(outcome.cost)
        summary = summaries[(outcome.target, outcome.seed, outcome.budget)]
        found = replay(summary, tolerance)
        everyone = len(summary["candidates"]) * summary["plan"]["total"]
        picks = {
            RACE: [found.pick],
            HALVING: outcome.picks[RACE],
            **{k: v for k, v in outcome.picks.items() if k != RACE},
        }
        outcomes.append(dataclasses.replace(outcome, cost=found.cost / everyone, picks=picks))
        means = {m: float(np.mean(a)) for m, a in trials[outcome.target].items()}
        real = max(means[c] for c in found.tied) - min(means[c] for c in found.tied) <= tolerance
        stop = f"{'tie' if found.tie_stop else 'decided'} at iteration {found.stop_at}"
        cells = [outcome.target, f"{outcome.budget:g}", outcome.seed, stop, len(found.tied), "yes" if real else "no",
                 found.pick, f"{found.cost / everyone:.3f}", f"{outcome.cost:.3f}"]  # fmt: skip
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return outcomes, lines, halving


def tables() -> str:
    tolerance, source = noise_tolerance(0.0)
    out = [f"Tolerance {tolerance:.4f} AP50 ({source}).", ""]
    copies = _copies([*STORES, *STORES.values()])
    for folder, reference in STORES.items():
        outcomes, lines, halving = replayed(copies, folder, tolerance)
        out += [f"**{folder}** (reference: {reference})", "",
                "| target | budget | seed | stop | tied | tie real | pick | cost | halving's cost |",
                "|---|---|---|---|---|---|---|---|---|", *lines, "",
                f"Mean cost: the rule {np.mean([o.cost for o in outcomes]):.3f}, plain halving "
                f"{np.mean(halving):.3f}.", "",
                "| budget | picker | races | regret [90%] | rule minus this [90%] |",
                "|---|---|---|---|---|"]  # fmt: skip
        for row in regret_rows(outcomes, reference_trials(copies / reference)):
            name = "noise-aware race" if row.picker == RACE else row.picker
            gap = "" if row.race_minus_this is None else _cell(row.race_minus_this)
            out.append(f"| {row.budget:g} | {name} | {row.races} | {_cell(row.regret)} | {gap} |")
        out.append("")
    return "\n".join(out).rstrip()


def _cell(found) -> str:  # noqa: ANN001 - an Interval
    return f"{found.value:+.3f} [{found.low:+.3f}, {found.high:+.3f}]"


if __name__ == "__main__":
    print(tables())
