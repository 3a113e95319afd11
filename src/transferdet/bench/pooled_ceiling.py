"""The noise ceiling of the pooled scopes: how well fine-tuning predicts itself.

Trial 0's AP is scored as a ranker of trial 1's, with the pooled measures every score gets
(:func:`~transferdet.bench.bootstrap.pooled`: each target's values standardised, then concatenated).
No ranker can be expected to agree with fine-tuning better than a second fine-tune does. The
interval resamples the targets (with two trials each) only: the trials are what is compared.
A percentile bootstrap (Efron & Tibshirani 1993, ch. 13), as every other interval of the report.
"""

from __future__ import annotations

import numpy as np

from transferdet.bench.bootstrap import MEASURES, Evidence, Interval, interval, pooled


def _parts(evidence: Evidence, targets: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
    parts = []
    for target in targets:
        models = sorted(evidence.trials[target])
        if len(models) >= 2:
            trials = [evidence.trials[target][m] for m in models]
            parts.append((np.array([t[0] for t in trials]), np.array([t[1] for t in trials])))
    return parts


def pooled_noise_ceiling(
    evidence: Evidence, count: int = 1000, seed: int = 0, level: float = 0.9
) -> dict[str, Interval]:
    """The pooled measures of trial 0's AP against trial 1's over the targets where every model was
    fine-tuned twice, with ``level`` intervals; empty where no target was."""
    names = [d for d in sorted(evidence.trials) if all(len(t) >= 2 for t in evidence.trials[d].values())]
    if not _parts(evidence, names):
        return {}

    def measures(targets: list[str]) -> dict[str, float]:
        parts = _parts(evidence, targets)
        return pooled(parts) if parts else dict.fromkeys(MEASURES, float("nan"))

    rng = np.random.default_rng(seed)
    draws = [measures([names[i] for i in rng.integers(0, len(names), len(names))]) for _ in range(count)]
    measured = measures(names)
    return {m: interval(measured[m], np.array([d[m] for d in draws]), level) for m in MEASURES}
