"""A race's rungs as bench jobs, so that they run through the bench runner (locally or on Ray,
with its retries) and their results and statuses live in the race's store (``results.sqlite`` in
the race's folder).

A rung job trains one candidate's run, in its run folder, to one rung's iteration of the full
schedule and evaluates the validation split carved from the training images (``stop_at``); the
last job of the winner (``stop_at`` None) finishes the run and evaluates the test split. The
candidate's rung jobs share the run folder, so each resumes where the last one stopped: no
iteration is trained twice. A job is identified by its definition, so the same race started again
finds its done rungs in the store, and a rung killed half-way is run again from the run's last
checkpoint (resuming is exact).
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from transferdet.bench.definitions import AP_KEYS, DataRef, TrainDefinition, make_job
from transferdet.bench.store import Job
from transferdet.data.options import DataArgs
from transferdet.errors import TransferdetError
from transferdet.runs import RunDir
from transferdet.select.race import TrainRung
from transferdet.train.job import TrainJob


class RungDefinition(TrainDefinition):
    """One candidate's run trained to ``stop_at`` (a rung) or to the end (None) in ``out``."""

    kind: Literal["rung"] = "rung"  # type: ignore[assignment]
    out: str
    stop_at: int | None

    def race_job(self) -> TrainJob:
        """The training job: the full schedule in ``out``, stopped at ``stop_at``, on the carved split."""
        job = self.train_job(Path(self.out))
        job.stop_at, job.carve_validation = self.stop_at, True
        return job


@dataclass
class RaceRuns:
    """A race's folder, the fields its rung jobs share (:func:`race_base`), each candidate's spec
    and stated card (mean, std; a candidate not listed is its own spec), and how its jobs are run
    (by :func:`~transferdet.select.runner.store_trainer`; :func:`inline_trainer` runs them here)."""

    out: Path
    base: dict[str, Any]
    specs: dict[str, tuple[str, dict]] = field(default_factory=dict)  # candidate -> (spec, card)
    executor: str = "local"
    address: str | None = None
    threads: int | None = None
    on_job: Callable[[str, Job, str], None] | None = None  # the bench runner's (event, job, detail)
    offset: int = 0  # a replicate's: its runs train with seed + offset on the race's validation images

    def job(self, order: list[str], candidate: str, stop_at: int | None) -> Job:
        spec, card = self.specs.get(candidate, (candidate, {}))
        base = self.base
        if self.offset:  # the race's splits (its split seed, else its seed), another seed for the rest
            split_seed = base["seed"] if base.get("split_seed") is None else base["split_seed"]
            base = {**base, "seed": base["seed"] + self.offset, "split_seed": split_seed}
        return rung_job(base, self.out, order, candidate, spec, card, stop_at, self.offset)

    def replica(self, offset: int) -> RaceRuns:
        """The same race's runs with seed + ``offset`` (``NN-name-seedS`` folders)."""
        return replace(self, offset=offset)


def inline_trainer(runs: RaceRuns, order: list[str]) -> TrainRung:
    """Rung jobs run one by one in this process, without a store: the run folders are the state
    (what a bench ``select`` job uses, which the bench runner itself retries)."""

    def train_rung(candidates: list[str], iteration: int | None) -> dict[str, dict]:
        records = {}
        for candidate in candidates:
            definition = RungDefinition.model_validate(runs.job(order, candidate, iteration).definition)
            try:
                records[candidate] = run_rung(definition)["ap"] | {"iteration": iteration}
            except TransferdetError as error:
                records[candidate] = {"error": str(error)}
        return records

    return train_rung


def run_folder(out: Path, order: list[str], candidate: str, seed: int | None = None) -> Path:
    """``NN-<name as a file name>``: NN is the candidate's place in the screen's order; a replicate's
    run (``seed``, another than the race's) adds ``-seedS``."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", candidate).strip("_")[:80]
    return out / f"{order.index(candidate):02d}-{slug}{'' if seed is None else f'-seed{seed}'}"


def rung_job(
    base: dict[str, Any], out: Path, order: list[str], candidate: str, spec: str, card: dict, stop_at: int | None,
    offset: int = 0,
) -> Job:  # fmt: skip
    """The job that brings ``candidate`` to ``stop_at``; ``base`` holds the race's shared fields
    (data, detector, recipe, overrides, seed, device, plugins). Paths under ``out`` are kept
    relative in its identity, so a race moved elsewhere finds its jobs."""
    card = dict(card)
    transfer = card.pop("transfer", None)  # "whole" for a detector source; absent: a body (stored races' meaning)
    folder = run_folder(out, order, candidate, base["seed"] if offset else None)
    definition = RungDefinition(**base, spec=spec, card=card, out=str(folder), stop_at=stop_at, transfer=transfer)
    return make_job(definition, Path(base["data"].path).name, candidate, base["seed"], out)


def race_base(data: Path, data_args: DataArgs, detector: str, recipe: str, overrides: dict, seed: int, device: str,
              plugins: list[str]) -> dict[str, Any]:  # fmt: skip
    """The fields every rung job of one race shares."""
    read = data_args.read
    ref = DataRef(path=str(data), format=data_args.format, split=data_args.split, on_bad_box=data_args.on_bad_box,
                  images=None if read.images is None else str(read.images), class_name=read.class_name,
                  annotations=None if read.annotations is None else str(read.annotations),
                  csv_columns=dict(read.csv_columns))  # fmt: skip
    split = {} if data_args.split_seed is None else {"split_seed": data_args.split_seed}
    return {"data": ref, "detector": detector, "recipe": recipe, "recipe_overrides": overrides, "seed": seed,
            "device": device, "plugins": plugins, **split}  # fmt: skip


def run_rung(definition: RungDefinition) -> dict[str, Any]:
    """Run one rung job: a rung the run folder has already evaluated answers from it; otherwise
    the run resumes from its checkpoint (or starts clean) and stops at the rung."""
    from transferdet.train.engine import train

    run, job = RunDir(Path(definition.out)), definition.race_job()
    _check_same_run(run, job)
    if definition.stop_at is not None:
        reached = {r["iteration"]: r for r in run.rungs()}
        if definition.stop_at in reached:
            return _result(reached[definition.stop_at], None)
    elif run.read_metrics() is not None:
        return _result(run.read_metrics(), None)
    resumed_from = run.checkpoint_iteration() if run.has_checkpoint() else None
    if run.path.exists() and resumed_from is None:
        shutil.rmtree(run.path)  # killed before its first checkpoint: start clean
    return _result(train(job, resume=resumed_from is not None), resumed_from)


def run_rung_job(job: Job, bench_dir: Path) -> dict[str, Any]:
    """A rung as the bench runner runs a job (``bench_dir`` unused: the run folder is in its definition)."""
    from transferdet.bench.jobs import stamped
    from transferdet.plugins import load_plugins

    load_plugins(job.definition.get("plugins", []))
    return stamped(run_rung(RungDefinition.model_validate(job.definition)))


def check_race_folders(runs: RaceRuns, order: list[str]) -> None:
    """Before any training: every candidate's run folder is empty or holds this race's run."""
    for candidate in order:
        job = RungDefinition.model_validate(runs.job(order, candidate, None).definition).race_job()
        _check_same_run(RunDir(job.out), job)


RUN_KEYS = ("data", "backbone", "detector", "seed", "format", "carve_validation")


def _check_same_run(run: RunDir, job: TrainJob) -> None:
    """A run folder that holds another run (a race started before into the same folder with another
    recipe, data, seed or candidate) is a one-line error: its rungs and checkpoint are not this
    race's to answer from or resume."""
    path = run.path / RunDir.MANIFEST
    if not path.is_file():
        return
    manifest = json.loads(path.read_text(encoding="utf-8"))
    ours = job.record(manifest["job"]["iterations"])
    differ = [k for k in RUN_KEYS if str(manifest["job"].get(k)) != str(ours.get(k))]
    if json.loads(json.dumps(job.recipe.model_dump())) != manifest["recipe"]:
        differ.append("recipe")
    if differ:
        raise TransferdetError(f"{run.path}: holds a run with another {', '.join(differ)}; race into another --out")


def _result(record: dict[str, Any], resumed_from: int | None) -> dict[str, Any]:
    return {"ap": {k: v for k, v in record.items() if k in AP_KEYS}, "resumed_from": resumed_from}
