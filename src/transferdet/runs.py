"""The folders that training leaves on disk, and the only code that reads or writes their files.

A training run (``transferdet train --out DIR``; :class:`RunDir`):

- ``recipe.json``: the manifest: the validated recipe, the job (data, backbone spec, seed, ...)
  and the detector's record (what rebuilds it without the training data, classes included);
- ``checkpoint.pt``: model, optimizer, schedule and random states, and the iteration; replaced
  atomically, so a kill leaves the previous one;
- ``log.jsonl``: one line of scalars per iteration and per evaluation;
- ``metrics.json``: the final evaluation (fractions in [0, 1]); ``summary.png``: its curves.

``transferdet train --trials N`` writes one run per trial in ``DIR/trial-K`` and, in ``DIR``,
``trials.json`` (every trial's metrics and seed) and ``metrics.json`` (mean and std per key).

A distillation teacher (``transferdet distill teacher --out DIR``; :class:`TeacherDir`):
``teacher.pt`` (the classifier's ``state_dict`` and a record) and ``teacher.json`` (the record).
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch

from transferdet.atomic import atomic_write_bytes
from transferdet.errors import TransferdetError
from transferdet.safe_load import UPGRADE_HINT, load_torch, load_trusted_torch, plain_state


def _write_json(path: Path, value: Any) -> None:
    atomic_write_bytes(path, json.dumps(value, indent=1).encode())


def _save_torch(path: Path, value: Any) -> None:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def _plain_random(state: dict[str, Any]) -> dict[str, Any]:
    """One process's random states in the current layout (NumPy's as a list beside tensors)."""
    numpy_state = state.get("numpy")
    if isinstance(numpy_state, tuple):
        state = {**state, "numpy": list(numpy_state)}
    return state


@dataclass(frozen=True)
class RunDir:
    """A ``transferdet train`` output folder."""

    path: Path

    MANIFEST = "recipe.json"
    CHECKPOINT = "checkpoint.pt"
    METRICS = "metrics.json"
    LOG = "log.jsonl"
    SUMMARY = "summary.png"
    TRIALS = "trials.json"
    RUNGS = "rungs.json"  # select's race: the validation result at each rung this run reached
    CONTENT = "no recipe.json and checkpoint.pt"  # how an error says a folder is not a run

    @staticmethod
    def is_run(path: Path) -> bool:
        """A folder holding a run's manifest and a checkpoint."""
        return (path / RunDir.MANIFEST).is_file() and (path / RunDir.CHECKPOINT).is_file()

    @property
    def checkpoint_file(self) -> Path:
        return self.path / self.CHECKPOINT

    @property
    def summary_file(self) -> Path:
        return self.path / self.SUMMARY

    def has_checkpoint(self) -> bool:
        return self.checkpoint_file.is_file()

    def holds_anything(self) -> bool:
        """A checkpoint exists (or something is in its place)."""
        return self.checkpoint_file.exists()

    # --- the manifest ---------------------------------------------------------------------------

    def write_manifest(self, recipe: dict[str, Any], job: dict[str, Any], detector: dict[str, Any]) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        _write_json(self.path / self.MANIFEST, {"recipe": recipe, "job": job, "detector": detector})

    def manifest(self) -> dict[str, Any]:
        """The manifest; a missing one (or a missing checkpoint) is an error naming the file."""
        for path in (self.path / self.MANIFEST, self.checkpoint_file):
            if not path.is_file():
                raise TransferdetError(f"{path}: missing (is {self.path} a transferdet training run?)")
        return json.loads((self.path / self.MANIFEST).read_text(encoding="utf-8"))

    def recorded_job(self) -> dict[str, Any] | None:
        """The job the manifest records, or None before the manifest is written."""
        path = self.path / self.MANIFEST
        return json.loads(path.read_text(encoding="utf-8"))["job"] if path.is_file() else None

    def backbone_spec(self) -> str:
        """The backbone spec (``ARCH@WEIGHTS``) the run trained from."""
        return self.manifest()["job"]["backbone"]

    # --- checkpoint, log, metrics ---------------------------------------------------------------

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        _save_torch(self.checkpoint_file, state)

    def load_checkpoint(self, device: str = "cpu") -> dict[str, Any]:
        """The checkpoint, read as data (``weights_only``); one written by a version that stored
        more than tensors and plain types is refused with the opt-in that converts it."""
        state = self._checkpoint()
        if device != "cpu":
            state["model"] = {k: v.to(device) for k, v in state["model"].items()}
        return state

    def _checkpoint(self, mmap: bool = False) -> dict[str, Any]:
        state = load_torch(self.checkpoint_file, hint=UPGRADE_HINT.format(folder=self.path), mmap=mmap)
        if not isinstance(state, dict) or not isinstance(state.get("model"), dict) or "iteration" not in state:
            raise TransferdetError(f"{self.checkpoint_file}: not a transferdet training checkpoint")
        return state

    def upgrade_checkpoint(self) -> None:
        """Rewrite a checkpoint of an older version (NumPy random states, which ``weights_only``
        refuses) as tensors and plain types. It loads the old file with full unpickling, which may
        run code: only for a file the user has said they trust. The old file is kept beside it."""
        old = load_trusted_torch(self.checkpoint_file)
        if not isinstance(old, dict) or "model" not in old:
            raise TransferdetError(f"{self.checkpoint_file}: not a transferdet training checkpoint")
        if "random" in old:
            old["random"] = [_plain_random(state) for state in old["random"]]
        backup = self.checkpoint_file.with_name(self.CHECKPOINT + ".old")
        backup.write_bytes(self.checkpoint_file.read_bytes())
        _save_torch(self.checkpoint_file, plain_state(old))
        self._checkpoint()  # it now loads as data

    def checkpoint_iteration(self) -> int:
        """The iteration the checkpoint was saved at (memory-mapped: the weights are not read)."""
        return int(self._checkpoint(mmap=True)["iteration"])

    def checkpoint_digest(self) -> str:
        from transferdet.hashing import file_digest

        return file_digest(self.checkpoint_file)

    @contextlib.contextmanager
    def log(self, append: bool, write: bool = True) -> Iterator[TextIO]:
        """The iteration log, appended to when resuming; a throwaway buffer when not ``write``
        (the other processes of a DDP run)."""
        if not write:
            yield io.StringIO()
            return
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / self.LOG, "a" if append else "w", encoding="utf-8") as handle:
            yield handle

    def log_rows(self) -> list[dict[str, Any]]:
        path = self.path / self.LOG
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def truncate_log(self, iteration: int) -> None:
        """Drop log lines past ``iteration`` (the checkpoint's; written before a kill)."""
        path = self.path / self.LOG
        if not path.is_file():
            return
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        kept = [line for line in lines if json.loads(line).get("iteration", 0) <= iteration]
        path.write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")

    def write_rung(self, record: dict[str, Any]) -> None:
        """Append one rung's validation result (select's race), replacing an earlier one at the
        same iteration (a rung evaluated again after a kill)."""
        rows = [r for r in self.rungs() if r["iteration"] != record["iteration"]] + [record]
        _write_json(self.path / self.RUNGS, sorted(rows, key=lambda r: r["iteration"]))

    def rung_predictions_file(self, iteration: int) -> Path:
        return self.path / f"rung-{iteration}-predictions.npz"

    def write_rung_predictions(self, iteration: int, predictions: list) -> None:
        """A rung's validation predictions (one per image, in the split's order), for the race's paired
        bootstrap over images: detections concatenated, ``image`` says whose."""
        image = np.concatenate([np.full(len(p.scores), i) for i, p in enumerate(predictions)] or [np.zeros(0)])
        columns = {k: np.concatenate([getattr(p, k) for p in predictions] or [np.zeros(0)])
                   for k in ("boxes", "scores", "labels")}  # fmt: skip
        buffer = io.BytesIO()
        np.savez(buffer, image=image.astype(np.int64), images=np.int64(len(predictions)),
                 **{**columns, "boxes": columns["boxes"].reshape(-1, 4)})  # fmt: skip
        atomic_write_bytes(self.rung_predictions_file(iteration), buffer.getvalue())

    def rung_predictions(self, iteration: int) -> list | None:
        """The predictions :meth:`write_rung_predictions` kept (None: none kept, a run from before them)."""
        from transferdet.evaluate.coco_metrics import Prediction
        from transferdet.safe_load import load_npz

        path = self.rung_predictions_file(iteration)
        if not path.is_file():
            return None
        found = load_npz(path)
        image, count = found["image"], int(found["images"])
        return [Prediction(found["boxes"][image == i], found["scores"][image == i], found["labels"][image == i])
                for i in range(count)]  # fmt: skip

    def rungs(self) -> list[dict[str, Any]]:
        path = self.path / self.RUNGS
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        _write_json(self.path / self.METRICS, metrics)

    def read_metrics(self) -> dict[str, Any] | None:
        path = self.path / self.METRICS
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

    # --- several trials -------------------------------------------------------------------------

    def trial(self, index: int) -> RunDir:
        return RunDir(self.path / f"trial-{index}")

    def write_trials(self, seeds: list[int], results: list[dict[str, Any]], summary: dict[str, Any]) -> None:
        """``trials.json`` (each trial's metrics) and ``metrics.json`` (their mean and std)."""
        _write_json(self.path / self.TRIALS, {"seeds": seeds, "trials": results})
        self.write_metrics(summary)


@dataclass(frozen=True)
class TeacherDir:
    """A ``transferdet distill teacher`` output folder."""

    path: Path

    WEIGHTS = "teacher.pt"
    RECORD = "teacher.json"

    @property
    def weights_file(self) -> Path:
        return self.path / self.WEIGHTS

    def write(self, state_dict: dict[str, torch.Tensor], record: dict[str, Any]) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        _save_torch(self.weights_file, {"state_dict": state_dict, "transferdet": record})
        _write_json(self.path / self.RECORD, record)

    def record(self) -> dict[str, Any]:
        """The teacher's record; a missing file is an error naming it."""
        for path in (self.weights_file, self.path / self.RECORD):
            if not path.is_file():
                raise TransferdetError(f"{path}: missing (is {self.path} a `transferdet distill teacher` output?)")
        return json.loads((self.path / self.RECORD).read_text(encoding="utf-8"))

    def state_dict(self) -> dict[str, torch.Tensor]:
        state = load_torch(self.weights_file)
        if not isinstance(state, dict) or not isinstance(state.get("state_dict"), dict):
            raise TransferdetError(f"{self.weights_file}: not a transferdet teacher (no state_dict)")
        return state["state_dict"]
