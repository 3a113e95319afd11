"""The image noise of a race's difference at a rung: the standard error of two candidates' validation
AP50 difference by a paired bootstrap over the validation images (1,000 replicates; Efron &
Tibshirani 1993), from the per-image predictions each run kept at the rung
(:meth:`~transferdet.runs.RunDir.write_rung_predictions`); no IoU is recomputed per replicate
(:mod:`~transferdet.evaluate.image_records`)."""

from __future__ import annotations

from pathlib import Path

from transferdet.evaluate.image_records import MatchRecords, match_records, paired_difference
from transferdet.runs import RunDir

BOOTSTRAP = 1000


class ImageNoise:
    """``(leader, candidate, rung) -> standard error`` for the runs of one race; 0 where a run kept no
    predictions at the rung (a run from before they were kept)."""

    def __init__(self, folders: dict[str, Path], records: list, classes: list[str], seed: int) -> None:
        self.folders, self.records, self.classes, self.seed = folders, records, classes, seed
        self.found: dict[tuple[str, int], MatchRecords | None] = {}
        self.errors: dict[tuple[str, str, int], float] = {}

    def _matches(self, candidate: str, rung: int) -> MatchRecords | None:
        if (candidate, rung) not in self.found:
            predictions = RunDir(self.folders[candidate]).rung_predictions(rung)
            usable = predictions is not None and len(predictions) == len(self.records)
            self.found[candidate, rung] = match_records(self.records, self.classes, predictions) if usable else None
        return self.found[candidate, rung]

    def __call__(self, leader: str, candidate: str, rung: int) -> float:
        key = (leader, candidate, rung)
        if key not in self.errors:
            a, b = self._matches(leader, rung), self._matches(candidate, rung)
            se = 0.0 if a is None or b is None else paired_difference(a, b, BOOTSTRAP, self.seed)[1]
            self.errors[key] = 0.0 if se != se else se  # NaN (no ground truth): no image noise to add
        return self.errors[key]
