"""The answer a report opens with says what to use from what the benchmark holds: the card only
where cards were stated."""

from __future__ import annotations

from transferdet.bench.bootstrap import Interval


def test_the_summary_advises_the_card_only_where_cards_were_stated() -> None:
    """The demo's zoo states no card (its top-1 rows score nothing): the advice is to state cards."""
    from transferdet.bench.bootstrap import Summary
    from transferdet.bench.report_data import ALL, ReportData
    from transferdet.bench.report_summary import summary_lines

    def row(metric: str, tau: float) -> Summary:
        gain = None if metric in ("knn", "imagenet_top1") else Interval(0.0, -0.1, 0.1)
        return Summary(ALL, metric, "c4", "local", 1, 5, {"kendall": Interval(tau, tau - 0.1, tau + 0.1)}, gain, "knn")

    data = ReportData(config={}, jobs=[], scores=[], ap=[], correlations=[], target="AP50",
                      summaries=[row("logme", 0.6), row("knn", 0.5), row("imagenet_top1", float("nan"))])  # fmt: skip
    lines = summary_lines(data)
    assert "no card stated" in lines[0] and "state each candidate's card" in lines[-1]
    stated = [row("logme", 0.6), row("knn", 0.5), row("imagenet_top1", 0.8)]
    data = ReportData(config={}, jobs=[], scores=[], ap=[], correlations=[], target="AP50", summaries=stated)
    assert "card imagenet_top1 τ 0.80" in summary_lines(data)[0] and "rank by the card" in summary_lines(data)[-1]
