"""One model's score rows on one layer or feature variant (:mod:`~transferdet.transfer.variants`),
from the raw box features of its base layers."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from transferdet.data.dataset import ImageRecord
from transferdet.metrics.suite import SOURCE_METRICS
from transferdet.transfer.features import BoxFeatures
from transferdet.transfer.scoring import Outcome, score_features
from transferdet.transfer.variants import (
    LayerVariant,
    box_sides,
    pyramid_levels,
    weighted_level_score,
    width_matched,
)


def standardised(targets: np.ndarray) -> np.ndarray:
    """Box targets with zero mean and unit variance per coordinate: LogME's regression has no
    intercept, so raw [0, 1] coordinates would mostly measure how well features fit a constant."""
    std = targets.std(axis=0)
    return (targets - targets.mean(axis=0)) / np.where(std > 0, std, 1.0)


def _score(
    features: np.ndarray,
    found: BoxFeatures,
    rows: np.ndarray | None,
    names: list[str],
    classes,
    device,  # noqa: ANN001
) -> dict[str, Outcome]:
    pick = slice(None) if rows is None else rows
    probs = found.source_probs[pick] if found.source_probs is not None else None
    return score_features(features, found.labels[pick], standardised(found.boxes[pick]), probs, names, classes, device)


def _width_note(kept: int, width: int) -> str | None:
    return None if kept == width else f"width-matched to {kept} dimensions, not {width}: the features have fewer"


def _matched(found: BoxFeatures, width: int, names: list[str], classes, device) -> dict[str, Outcome]:  # noqa: ANN001
    projected, kept = width_matched(found.features, width)
    outcomes = _score(projected, found, None, names, classes, device)
    note = _width_note(kept, width)
    return {m: Outcome(o.score, o.reason, o.note or note) for m, o in outcomes.items()}


def _pyramid(
    extracted: dict[str, BoxFeatures], variant: LayerVariant, records: Sequence[ImageRecord], image_size: int,
    names: list[str], classes, device,  # noqa: ANN001
) -> dict[str, Outcome]:  # fmt: skip
    present = [layer for layer in variant.base if layer in extracted]  # the levels this backbone has
    if not present:
        return {m: Outcome(None, f"this backbone has none of {', '.join(variant.base)}") for m in names}
    first = extracted[present[0]]
    sizes = np.array([[records[i].width, records[i].height] for i in first.image_index], dtype=np.float64)
    levels = pyramid_levels(box_sides(first.boxes, sizes, image_size), tuple(int(layer[1:]) for layer in present))
    per_level, counts = [], []
    for layer in present:
        rows = np.flatnonzero(levels == int(layer[1:]))
        counts.append(len(rows))
        if len(rows) < 2:
            per_level.append({})
            continue
        projected, _ = width_matched(extracted[layer].features[rows], variant.width)
        per_level.append(_score(projected, extracted[layer], rows, names, classes, device))
    outcomes = {}
    for metric in names:
        scored = [found.get(metric) for found in per_level]
        score = weighted_level_score([o.score if o else None for o in scored], counts)
        reasons = "; ".join(f"{layer}: {o.reason}" for layer, o in zip(present, scored, strict=True) if o and o.reason)
        level_notes = [f"{layer}: {o.note}" for layer, o in zip(present, scored, strict=True) if o and o.note]
        note = "; ".join([f"boxes per level {dict(zip(present, counts, strict=True))}", *level_notes])
        outcomes[metric] = Outcome(score, None if score is not None else reasons or "no level could be scored", note)
    return outcomes


def variant_rows(
    model: str,
    variant: LayerVariant,
    extracted: dict[str, BoxFeatures],
    records: Sequence[ImageRecord],
    settings,  # noqa: ANN001 - a RankSettings
    wanted: list[str],
    classes: list[str],
    static: dict[str, Outcome],
    static_names: Sequence[str],
) -> list[dict]:
    """Rows ``{"model", "layer", "features", "metric", "score", "status", "reason", "note"}`` of
    ``wanted`` on ``variant``; the source-classifier metrics (LEEP, NCE) on raw layers only, where
    the checkpoint's classifier is, and the static scores (``static_names``) as ``static`` gives them."""
    found = next((extracted[layer] for layer in reversed(variant.base) if layer in extracted), None)
    has_source = found is not None and found.source_probs is not None and variant.width is None
    names = [m for m in wanted if m not in static_names and (m not in SOURCE_METRICS or has_source)]
    if variant.pyramid:
        outcomes = _pyramid(extracted, variant, records, settings.image_size, names, classes, settings.device)
    elif variant.width is not None:
        outcomes = _matched(found, variant.width, names, classes, settings.device)
    else:
        outcomes = _score(found.features, found, None, names, classes, settings.device)
    outcomes = {m: (static[m] if m in static else outcomes[m]) for m in wanted if m in static or m in outcomes}
    return [
        {
            "model": model,
            "layer": variant.name,
            "features": settings.features,
            "metric": metric,
            "score": outcome.score,
            "status": outcome.status,
            "reason": outcome.reason,
            "note": outcome.note,
        }
        for metric, outcome in outcomes.items()
    ]
