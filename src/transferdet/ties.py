"""When two scores are the same score: the one tolerance every ranking uses (the rank table, its
``rank`` column, the ``recommended:`` line, the bench's regret and pair agreement, ``select``).

Scores within a relative ``TIE_RTOL`` of each other tie: H-score at its C - 1 ceiling differs in the
last bits between models, and a model listed twice must tie with itself.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

TIE_RTOL = 1e-9


def tied(a: float, b: float, rtol: float = TIE_RTOL) -> bool:
    return abs(a - b) <= rtol * max(abs(a), abs(b))


def tied_pairs(scores: np.ndarray, rtol: float = TIE_RTOL) -> np.ndarray:
    """:func:`tied` for every pair of ``scores`` at once (the same float arithmetic): a boolean matrix."""
    a, b = scores[:, None], scores[None, :]
    return np.abs(a - b) <= rtol * np.maximum(np.abs(a), np.abs(b))


def competition_ranks(scores: Sequence[float], rtol: float = TIE_RTOL) -> list[int]:
    """Rank 1 for the highest score; tied scores share the best rank of their group and the next
    group skips (1, 1, 3). A group is the scores tied with its highest."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    ranks = [0] * len(scores)
    leader = None
    for position, index in enumerate(order):
        if leader is None or not tied(scores[leader], scores[index], rtol):
            leader, rank = index, position + 1
        ranks[index] = rank
    return ranks


def tied_for_first(scores: Sequence[float], rtol: float = TIE_RTOL) -> list[int]:
    """Indices of the scores that share rank 1 (:func:`competition_ranks`), in their given order: the
    scores tied with the highest, since a score lower than one that misses the tie misses it too (the
    difference grows faster than the tolerance). The bootstrap asks this hundreds of thousands of times."""
    values = np.asarray(scores, dtype=float)
    top = values.max()
    return np.flatnonzero(np.abs(top - values) <= rtol * np.maximum(abs(top), np.abs(values))).tolist()


def rank_rows(rows: list[dict], group: tuple[str, ...]) -> list[dict]:
    """``rows`` (dicts with a ``score``) with ``rank`` among the rows that agree on the ``group``
    keys (1 = highest score; tied scores share it) and ``tied``; None and False where ``score`` is None."""
    groups: dict[tuple, list[int]] = {}
    for index, row in enumerate(rows):
        if row["score"] is not None:
            groups.setdefault(tuple(row[k] for k in group), []).append(index)
    ranked: dict[int, tuple[int | None, bool]] = {}
    for members in groups.values():
        ranks = competition_ranks([rows[i]["score"] for i in members])
        ranked |= {i: (r, ranks.count(r) > 1) for i, r in zip(members, ranks, strict=True)}
    return [
        dict(row, rank=ranked.get(i, (None, False))[0], tied=ranked.get(i, (None, False))[1])
        for i, row in enumerate(rows)
    ]
