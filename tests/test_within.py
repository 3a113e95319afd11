"""The within-architecture scope (pairs of one architecture's checkpoints on one target), its
noise ceiling, the combined card-then-metric ranker and the shelf's pre-registered rule."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from transferdet.bench.bootstrap import Evidence, Interval
from transferdet.bench.shelf_rule import Candidate, rule_candidates, rule_winner
from transferdet.bench.within import group_tau, pair_share, pair_share_where, within_groups
from transferdet.bench.within_summary import WithinSummary, noise_ceiling, noise_ceiling_pairs, summarise_within
from transferdet.transfer.combined import card_then_metric

ARCH = {"a-imagenet": "a", "a-bccd": "a", "a-chess": "a", "b-imagenet": "b", "b-bccd": "b"}


def test_pairs_of_one_architecture_on_one_target_ties_counting_half() -> None:
    scores = {"t1": {"a-imagenet": 3.0, "a-bccd": 2.0, "a-chess": 1.0, "b-imagenet": 9.0, "b-bccd": 9.0}}
    aps = {"t1": {"a-imagenet": 0.5, "a-bccd": 0.6, "a-chess": 0.1, "b-imagenet": 0.2, "b-bccd": 0.3}}
    groups = within_groups(scores, aps, ["t1"], ARCH)
    assert [len(s) for s, _ in groups] == [3, 1 + 1]  # the a's and the b's; no pair across them
    # a: (imagenet, bccd) wrong, (imagenet, chess) right, (bccd, chess) right; b: tied -> half
    assert pair_share(groups) == pytest.approx((2 + 0.5) / 4)
    expected_a = stats.kendalltau([3.0, 2.0, 1.0], [0.5, 0.6, 0.1]).statistic
    assert group_tau(groups) == pytest.approx(expected_a)  # the b group's tau is undefined: left out
    share, pairs = pair_share_where(scores, aps, ARCH, keep=lambda x, y: "chess" in x + y)
    assert (share, pairs) == (1.0, 2)


def _evidence() -> Evidence:
    rng = np.random.default_rng(0)
    trials = {t: {m: np.array([0.5 + 0.1 * i + rng.normal(0, 0.01) for _ in range(2)]) for i, m in enumerate(ARCH)}
              for t in ("t1", "t2", "t3")}  # fmt: skip
    good = {t: {m: float(v.mean()) for m, v in trials[t].items()} for t in trials}
    bad = {t: {m: -s for m, s in by.items()} for t, by in good.items()}
    return Evidence({("logme", "c5", "local"): good, ("knn", "c5", "local"): bad}, trials)


def test_within_summaries_carry_intervals_and_a_gain_over_the_best_baseline() -> None:
    found = {s.metric: s for s in summarise_within(_evidence(), ARCH, "pretrained sources", count=200)}
    assert found["logme"].measures["pair_share"].value == 1.0 and found["knn"].measures["pair_share"].value == 0.0
    assert found["logme"].pairs == 3 * (3 + 1)  # per target: 3 pairs of a's, 1 of b's
    assert found["logme"].gain.value == 1.0 and found["logme"].against == "knn c5 local"
    assert found["knn"].gain is None
    low, high = found["logme"].measures["group_tau"].low, found["logme"].measures["group_tau"].high
    assert low == high == 1.0


def test_the_noise_ceiling_compares_trial_0_with_trial_1() -> None:
    trials = {"t1": {"a-imagenet": np.array([0.1, 0.2]), "a-bccd": np.array([0.3, 0.1])}}
    ceiling = noise_ceiling(Evidence({}, trials), ARCH, count=50)
    assert ceiling["pair_share"].value == 0.0  # trial 0 orders them one way, trial 1 the other


def test_the_noise_ceiling_row_counts_its_own_pairs_not_the_first_scores() -> None:
    """Its pairs are every twice fine-tuned pair of one architecture, scored or not; the row used
    to copy the best score's count (1 here, where only two sources were scored yet)."""
    from types import SimpleNamespace

    from transferdet.bench.report_data import Within
    from transferdet.bench.report_within import within_records

    found = _evidence()
    found.scores[("logme", "c5", "local")] = {"t1": {"a-imagenet": 1.0, "a-bccd": 2.0}}
    del found.scores[("knn", "c5", "local")]
    summaries = summarise_within(found, ARCH, "pretrained sources", count=20)
    assert [s.pairs for s in summaries] == [1]
    ceiling = noise_ceiling(found, ARCH, count=20)
    assert noise_ceiling_pairs(found, ARCH) == 3 * (3 + 1)
    data = SimpleNamespace(within=Within(summaries, ceiling, [], None, noise_ceiling_pairs(found, ARCH)))
    rows = {r["metric"]: r for r in within_records(data)}
    assert (rows["logme"]["pairs"], rows["noise_ceiling"]["pairs"]) == (1, 12)


def test_the_combined_ranker_puts_the_card_first_and_the_metric_within_equal_cards() -> None:
    top1 = {"a-imagenet": 77.6, "a-bccd": 77.6, "b-imagenet": 71.9, "b-bccd": 71.9}
    metric = {"a-imagenet": 0.1, "a-bccd": 0.3, "b-imagenet": 0.9, "b-bccd": 0.9}
    assert card_then_metric(top1, metric) == {"a-bccd": -1.0, "a-imagenet": -2.0, "b-imagenet": -3.0, "b-bccd": -3.0}
    without = card_then_metric({**top1, "b-bccd": None}, metric)  # one model states no card: the metric alone
    assert without == {"b-imagenet": -1.0, "b-bccd": -1.0, "a-bccd": -3.0, "a-imagenet": -4.0}


def _summary(metric: str, layer: str, features: str, share: float, tau: float) -> WithinSummary:
    nan = math.nan
    measures = {"pair_share": Interval(share, nan, nan), "group_tau": Interval(tau, nan, nan)}
    return WithinSummary("pretrained sources", metric, layer, features, 10, measures, None, None)


def test_the_rule_picks_by_share_then_tau_within_the_margin_then_order() -> None:
    summaries = [
        _summary("logme", "c5", "local+bg0", 0.70, 0.2), _summary("logme", "c5", "local+bg2", 0.72, 0.2),
        _summary("gbc", "c5/wm64", "local+bg0", 0.72, 0.5), _summary("gbc", "c5/wm64", "local+bg2", 0.71, 0.5),
        _summary("sfda", "c4", "local+bg0", 0.60, 0.9),  # one background setting only: not a candidate
        _summary("knn", "c5", "local+bg0", 0.99, 0.9), _summary("knn", "c5", "local+bg2", 0.99, 0.9),  # a baseline
    ]  # fmt: skip
    candidates = rule_candidates(summaries)
    assert [(c.metric, c.layer) for c in candidates] == [("logme", "c5"), ("gbc", "c5/wm64")]
    assert rule_winner(candidates) == Candidate("gbc", "c5/wm64", 0.715, 0.5, (0.72, 0.71))  # within 0.02: tau
    far = [Candidate("logme", "c5", 0.80, 0.1, ()), Candidate("gbc", "c5/wm64", 0.75, 0.9, ())]
    assert rule_winner(far).metric == "logme"
    same = [Candidate("logme", "c5", 0.80, 0.5, ()), Candidate("gbc", "c5/wm64", 0.80, 0.5, ())]
    assert rule_winner(same).metric == "logme" and rule_winner([]) is None


def test_the_reports_within_section_shows_its_shares_as_a_figure(tmp_path) -> None:
    """The section's figure is written beside report.md and linked from it (no figure, and no
    section, where no architecture has two scored sources)."""
    from types import SimpleNamespace

    from transferdet.bench.report import Document
    from transferdet.bench.report_data import Within
    from transferdet.bench.report_within import within_section

    found = _evidence()
    summaries = summarise_within(found, ARCH, "pretrained sources", count=20)
    within = Within(summaries, noise_ceiling(found, ARCH, count=20), [], None, noise_ceiling_pairs(found, ARCH))
    doc = Document(tmp_path)
    within_section(doc, SimpleNamespace(within=within, target="AP50"))
    assert (tmp_path / "plots" / "within.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "](plots/within.png)" in "\n".join(doc.md)
    empty = Document(tmp_path / "empty")
    within_section(empty, SimpleNamespace(within=Within([], {}, [], None), target="AP50"))
    assert empty.md == [] and not (tmp_path / "empty" / "plots").exists()
