"""A combined ranker for pretrained sources: the checkpoint card's ImageNet top-1 across
architectures, a transferability metric within one.

On the real benchmark the card ordered architectures better than every metric (docs/results.md),
and within one architecture the card cannot tell checkpoints apart (an ImageNet model and the
detectors fine-tuned from it share its card). So the order is lexicographic: top-1 first, the
metric among equal top-1. Where any candidate states no top-1, there is no card to put first and
the order is the metric's alone. Scores are minus the position in that order (1 for the first),
tied candidates sharing it (:mod:`~transferdet.ties`), so higher is better as for every score.
"""

from __future__ import annotations

from transferdet.ties import tied


def card_then_metric(top1: dict[str, float | None], metric: dict[str, float]) -> dict[str, float]:
    """Each model's combined score (models with a metric score; ``top1`` may lack some or be None)."""
    models = list(metric)
    carded = all(top1.get(m) is not None for m in models)
    card = {m: float(top1[m]) if carded else 0.0 for m in models}
    order = sorted(models, key=lambda m: (-card[m], -metric[m]))
    scores, position, previous = {}, 0, None
    for index, model in enumerate(order):
        same = previous is not None and card[model] == card[previous] and tied(metric[model], metric[previous])
        position = position if same else index + 1
        scores[model], previous = -float(position), model
    return scores
