"""When two scores are the same score: the one tolerance every ranking uses (the rank table, its
``rank`` column, the ``recommended:`` line, the bench's regret and pair agreement, ``select``).

Scores within a relative ``TIE_RTOL`` of each other tie: H-score at its C - 1 ceiling differs in the
last bits between models, and a model listed twice must tie with itself.
"""

from __future__ import annotations

from collections.abc import Sequence

TIE_RTOL = 1e-9


def tied(a: float, b: float, rtol: float = TIE_RTOL) -> bool:
    return abs(a - b) <= rtol * max(abs(a), abs(b))


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
    """Indices of the scores that share rank 1, in their given order."""
    return [i for i, r in enumerate(competition_ranks(scores, rtol)) if r == 1]
