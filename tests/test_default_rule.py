"""rank's default across scopes (bench/default_rule.py): the two scopes' pairs, each ranker's share
of them (ties half), averaged over background settings, and the rule's qualification by intervals."""

from __future__ import annotations

import numpy as np

from transferdet.bench.bootstrap import Evidence, Interval
from transferdet.bench.default_rule import Ranker, on_replicates, paired_gain, rankers, rule_winner, scope_pairs

ARCH = {"a1": "a", "a2": "a", "ar": "a", "b1": "b", "br": "b"}
RANDOM = {"ar", "br"}
AP = {"a1": 0.5, "a2": 0.4, "ar": 0.1, "b1": 0.6, "br": 0.2}  # truth: b1 > a1 > a2 > br > ar


def test_the_scopes_pair_pretrained_with_random_and_architectures_apart():
    pairs = scope_pairs(ARCH, RANDOM)
    assert sorted(pairs["pretrained-vs-random"]) == sorted(
        [("a1", "ar"), ("a1", "br"), ("a2", "ar"), ("a2", "br"), ("b1", "ar"), ("b1", "br")]
    )
    assert sorted(pairs["across-architectures"]) == [("a1", "b1"), ("a2", "b1")]


def _evidence(scores: dict[str, dict[str, float]]) -> Evidence:
    trials = {"t": {m: np.array([v, v]) for m, v in AP.items()}}
    return Evidence({(m, "c5", f): {"t": s} for m, s in scores.items() for f in ("local+bg0", "local+bg2")}, trials)


def test_a_share_counts_pairs_ordered_right_and_ties_half():
    # "logme" gets every pretrained-vs-random pair right and both across pairs wrong; "knn" ties a1 with b1
    scores = {"logme": {"a1": 9.0, "a2": 8.0, "ar": 1.0, "b1": 3.0, "br": 2.0},
              "knn": {"a1": 5.0, "a2": 4.0, "ar": 0.0, "b1": 5.0, "br": 6.0}}  # fmt: skip
    shares = on_replicates(_evidence(scores), scope_pairs(ARCH, RANDOM), count=20)
    found = {r.metric: r.shares for r in rankers(shares)}
    assert found["logme"]["pretrained-vs-random"].value == 1.0
    assert found["logme"]["across-architectures"].value == 0.0
    # knn: every pretrained source below br (3 of 6 right); a1-b1 tied (half), a2-b1 right
    assert found["knn"]["pretrained-vs-random"].value == 0.5
    assert found["knn"]["across-architectures"].value == 0.75
    gain = paired_gain(shares, ("knn", "c5"), ("logme", "c5"))
    assert gain["worse"].value == 0.5 and gain["across-architectures"].value == 0.75


def _ranker(metric: str, low: float, value: float) -> Ranker:
    both = Interval(value, low, value + 0.1)
    return Ranker(metric, "c5", {"pretrained-vs-random": both, "across-architectures": both})


def test_only_intervals_above_chance_in_both_scopes_qualify():
    over, under = _ranker("logme", 0.55, 0.60), _ranker("knn", 0.45, 0.70)
    assert rule_winner([under, over]) == (over, True)
    assert rule_winner([under]) == (under, False)  # none qualified: the criterion over every candidate
