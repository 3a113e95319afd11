"""Per-box features to metric outcomes, robust to real data: a metric that cannot score these
features says why, and never takes the others with it.

- The feature metrics share one Gram pass and run together; if that fails, each is tried on its own,
  so that e.g. LogME's regression on box coordinates still scores single-class data.
- SFDA, GBC and ETran estimate a scatter matrix or a Gaussian per class, and the k-NN and
  linear-probe baselines cross-validate on stratified folds: they need two boxes of each class; a
  class with fewer is left out of those (named in the outcome's note), as long as two classes
  remain; they then share a second pass, over the boxes they keep.
- On a single class (single-class data ranked with ``--background 0``) the metrics with a
  label-free part keep it, with a note: TLogME its regression half (LogME on the box coordinates,
  TMOD), ETran its energy and box-regression terms.
- LEEP and NCE need the checkpoint's own classifier; without one they are unavailable.

With ``device`` (a GPU), the shared pass's work over the feature rows runs there
(:func:`transferdet.metrics.suite`); the fallbacks above run on the host.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from transferdet.metrics import MetricInputError, logme_regression, suite
from transferdet.metrics.etran import etran_energy, etran_regression
from transferdet.metrics.suite import PER_CLASS_METRICS, SHARED_METRICS, SOURCE_METRICS

REGRESSION_ONLY = {"logme_regression": logme_regression}  # metrics that need no class labels


def _etran_without_classes(features: np.ndarray, targets: np.ndarray) -> float:
    return etran_energy(features) + etran_regression(features, targets)


# on one class: the part of a metric that needs no labels, and what is left out
LABEL_FREE_PARTS = {
    "tlogme": (logme_regression, "its classification half is left out (the box-regression half only)"),
    "etran": (_etran_without_classes, "its LDA term is left out (energy + box regression only)"),
}


@dataclass(frozen=True)
class Outcome:
    """One metric's result: a score, or None and the reason; ``note`` says what was adapted."""

    score: float | None
    reason: str | None = None
    note: str | None = None

    @property
    def status(self) -> str:
        return "ok" if self.score is not None else "failed"


def _gram_outcomes(
    names: list[str],
    features: np.ndarray,
    labels: np.ndarray,
    targets: np.ndarray,
    probs: np.ndarray | None,
    device: str | None = None,
) -> dict[str, Outcome]:
    if not names:
        return {}
    try:
        return {k: Outcome(v) for k, v in suite(features, labels, targets, probs, names, device).items()}
    except MetricInputError:
        pass  # one of them cannot score: try each alone, to keep the others
    outcomes = {}
    for name in names:
        try:
            if name in REGRESSION_ONLY:
                outcomes[name] = Outcome(REGRESSION_ONLY[name](features, targets))
            else:
                outcomes[name] = Outcome(suite(features, labels, targets, probs, [name])[name])
        except MetricInputError as error:
            outcomes[name] = Outcome(None, f"{name}: {error}")
    return outcomes


def _small_classes(labels: np.ndarray, minimum: int = 2) -> list[tuple[int, int]]:
    """(label, count) of every class present with fewer than ``minimum`` boxes."""
    present, counts = np.unique(labels, return_counts=True)
    return [(int(label), int(count)) for label, count in zip(present, counts, strict=True) if count < minimum]


def _per_class_outcomes(
    names: list[str],
    features: np.ndarray,
    labels: np.ndarray,
    targets: np.ndarray,
    classes: Sequence[str],
    device: str | None = None,
) -> dict[str, Outcome]:
    """The per-class metrics (SFDA, GBC, ETran, the k-NN and linear-probe baselines) on the boxes of
    the classes that have two or more, together (a note names the others)."""
    small = _small_classes(labels)
    described = ", ".join(f"class {_class_name(classes, label)!r} has {count} box(es)" for label, count in small)
    keep = ~np.isin(labels, [label for label, _ in small])
    if len(np.unique(labels[keep])) < 2:
        return {n: Outcome(None, f"{n}: {described}; needs 2 per class in at least two classes") for n in names}
    outcomes = _gram_outcomes(names, features[keep], labels[keep], targets[keep], None, device)
    return {
        n: Outcome(o.score, o.reason, f"{n}: {described}; left out of this metric" if o.score is not None else None)
        for n, o in outcomes.items()
    }


def _label_free_outcome(name: str, features: np.ndarray, targets: np.ndarray, only_class: str) -> Outcome:
    part, left_out = LABEL_FREE_PARTS[name]
    try:
        score = part(features, targets)
    except MetricInputError as error:
        return Outcome(None, f"{name}: {error}")
    return Outcome(score, note=f"{name}: a single class ({only_class!r}); {left_out}")


def _class_name(classes: Sequence[str], label: int) -> str:
    return classes[label] if 0 <= label < len(classes) else str(label)


def score_features(
    features: np.ndarray,
    labels: np.ndarray,
    targets: np.ndarray,
    probs: np.ndarray | None,
    names: Sequence[str],
    classes: Sequence[str],
    device: str | None = None,
) -> dict[str, Outcome]:
    """Every metric of ``names`` on the box features, in the order asked (the shared pass on
    ``device`` where one is given)."""
    label_free = [n for n in names if n in LABEL_FREE_PARTS] if len(np.unique(labels)) == 1 else []
    only = _class_name(classes, int(labels[0])) if label_free else ""
    outcomes = {n: _label_free_outcome(n, features, targets, only) for n in label_free}
    labelled = [n for n in names if n not in label_free]
    small = bool(_small_classes(labels))
    shared = [n for n in labelled if n in SHARED_METRICS and not (small and n in PER_CLASS_METRICS)]
    outcomes.update(_gram_outcomes(shared, features, labels, targets, probs, device))
    if small:
        per_class = [n for n in labelled if n in PER_CLASS_METRICS]
        if per_class:
            outcomes.update(_per_class_outcomes(per_class, features, labels, targets, classes, device))
    for name in labelled:
        if name in SOURCE_METRICS:
            if probs is None:
                outcomes[name] = Outcome(None, f"{name}: needs the checkpoint's own linear classifier (none here)")
                continue
            try:
                outcomes[name] = Outcome(suite(features, labels, None, probs, [name])[name])
            except MetricInputError as error:
                outcomes[name] = Outcome(None, f"{name}: {error}")
    return {name: outcomes[name] for name in names}
