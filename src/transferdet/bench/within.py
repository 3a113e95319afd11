"""The within-architecture scope: does a score order the checkpoints of one architecture on one
target as fine-tuning orders them? (The question of a practitioner's shelf: TMOD's "Real" setting;
Wang et al. 2024, "Efficient Transferability Assessment for Selection of Pre-trained Detectors".)

Pooled Kendall tau over all sources is dominated by pairs of different architectures, so this scope
has its own two figures, over groups (one architecture on one target):

- ``pair_share``: the share of the groups' pairs a score orders as mean fine-tuned AP orders them,
  a tie (of scores within :data:`~transferdet.ties.TIE_RTOL`, or of APs) counting half;
- ``group_tau``: the mean over groups of Kendall's tau-b.

Both are pure functions of arrays; :mod:`~transferdet.bench.bootstrap` gives them intervals.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from transferdet.bench.bootstrap import tau_b_from_signs
from transferdet.ties import tied_pairs

Group = tuple[np.ndarray, np.ndarray]  # (scores, APs) of one architecture's checkpoints on one target


def pair_counts(groups: Sequence[Group]) -> tuple[float, int]:
    """(pairs ordered right, ties counting half; pairs) over ``groups``."""
    right, pairs = 0.0, 0
    for scores, aps in groups:
        n = len(scores)  # the matrices are symmetric, their diagonals tied: each pair is counted twice
        tie = tied_pairs(np.asarray(scores, dtype=float)) | (aps[:, None] == aps[None, :])
        agree = (scores[:, None] - scores[None, :]) * (aps[:, None] - aps[None, :]) > 0
        pairs += n * (n - 1) // 2
        right += 0.25 * float(np.count_nonzero(tie) - n) + 0.5 * float(np.count_nonzero(agree & ~tie))
    return right, pairs


def pair_share(groups: Sequence[Group]) -> float:
    right, pairs = pair_counts(groups)
    return right / pairs if pairs else math.nan


def _tau_b(scores: np.ndarray, aps: np.ndarray) -> float:
    """Kendall's tau-b with score ties by :func:`~transferdet.ties.tied` (a tie is a zero sign)."""
    sx = np.where(tied_pairs(np.asarray(scores, dtype=float)), 0.0, np.sign(scores[:, None] - scores[None, :]))
    return tau_b_from_signs(sx, np.sign(aps[:, None] - aps[None, :]))


def group_tau(groups: Sequence[Group]) -> float:
    taus = [t for s, a in groups if len(s) >= 2 and not math.isnan(t := _tau_b(s, a))]
    return float(np.mean(taus)) if taus else math.nan


def within_groups(
    scores: dict[str, dict[str, float]],
    aps: dict[str, dict[str, float]],
    targets: Sequence[str],
    arch_of: dict[str, str],
) -> list[Group]:
    """One group per drawn target and architecture with two or more checkpoints scored there;
    ``scores`` and ``aps``: target -> model -> value."""
    groups = []
    for target in targets:
        by_model = {m: s for m, s in scores.get(target, {}).items() if m in aps.get(target, {}) and m in arch_of}
        for arch in dict.fromkeys(arch_of[m] for m in by_model):
            members = [m for m in by_model if arch_of[m] == arch]
            if len(members) >= 2:
                groups.append((np.array([by_model[m] for m in members]), np.array([aps[target][m] for m in members])))
    return groups


def within_measures(groups: Sequence[Group]) -> dict[str, float]:
    return {"pair_share": pair_share(groups), "group_tau": group_tau(groups)}


def pair_share_where(
    scores: dict[str, dict[str, float]],
    aps: dict[str, dict[str, float]],
    arch_of: dict[str, str],
    keep: Callable[[str, str], bool],
) -> tuple[float, int]:
    """``pair_share`` over the within-architecture pairs (a, b) for which ``keep(a, b)`` holds (for
    example, pairs with a source that an earlier benchmark had not measured), and their number."""
    right, pairs = 0.0, 0
    for target, by_model in scores.items():
        models = [m for m in by_model if m in aps.get(target, {}) and m in arch_of]
        for i, a in enumerate(models):
            for b in models[i + 1 :]:
                if arch_of[a] != arch_of[b] or not keep(a, b):
                    continue
                found, count = pair_counts([(np.array([by_model[a], by_model[b]]),
                                             np.array([aps[target][a], aps[target][b]]))])  # fmt: skip
                right, pairs = right + found, pairs + count
    return (right / pairs if pairs else math.nan), pairs
