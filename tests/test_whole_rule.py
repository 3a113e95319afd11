"""The whole-transfer measurement's question 2 (bench/whole_rule.py): the pre-registered rule picks
the ranker that orders whole sources as fine-tuning does, by the shelf's criterion and tie-break in
the whole rule's tap order, and recommends it only where its intervals clear chance and the baselines."""

from __future__ import annotations

import numpy as np

from transferdet.bench.bootstrap import Evidence
from transferdet.bench.whole_rule import whole_ranking

ARCHS = ("mnv2", "lite0", "lite2")
TARGETS = ("bccd", "chess_pieces", "hardhat", "pothole")
SOURCES = ("bccd", "chess_pieces", "hardhat", "thermal_dogs")
FEATURES = ("local+bg0", "local+bg2")


def _shelf(perfect: dict[tuple[str, str], float], seed: int = 0) -> tuple[Evidence, dict[str, str]]:
    """12 whole sources on 4 targets, two trials each, their AP set by a hidden quality; every key
    of ``perfect`` (metric, layer) scores that quality times its value (1: orders them right, -1:
    reversed), every other ranker scores noise."""
    rng = np.random.default_rng(seed)
    arch_of = {f"{a}-{s}": a for a in ARCHS for s in SOURCES}
    quality = {(t, m): rng.normal() for t in TARGETS for m in arch_of}
    trials = {
        t: {m: np.array([quality[t, m] + 0.01 * rng.normal() for _ in range(2)]) for m in arch_of} for t in TARGETS
    }
    scores = {}
    for layer in ("c4", "c5", "fpn_ms"):
        for metric in ("logme", "h_score", "knn", "linear_probe"):
            sign = perfect.get((metric, layer))
            for features in FEATURES:
                scores[(metric, layer, features)] = {
                    t: {m: (sign * quality[t, m] if sign else rng.normal()) for m in arch_of} for t in TARGETS
                }
    return Evidence(scores, trials), arch_of


def test_a_ranker_that_orders_the_sources_as_fine_tuning_does_wins_and_qualifies() -> None:
    found, arch_of = _shelf({("logme", "fpn_ms"): 1.0})
    ranking = whole_ranking(found, arch_of, count=200)
    assert (ranking.winner.metric, ranking.winner.layer) == ("logme", "fpn_ms")
    assert ranking.winner.share.value == 1.0 and ranking.qualifies
    assert ranking.winner.gain.low > 0 and ranking.pairs == 72
    assert ranking.ceiling["pair_share"].value == 1.0  # trial noise far below the sources' spread
    assert {b.metric for b in ranking.baselines} == {"knn", "linear_probe"}


def test_of_two_perfect_rankers_the_earlier_tap_wins_before_the_earlier_metric() -> None:
    found, arch_of = _shelf({("logme", "fpn_ms"): 1.0, ("h_score", "c4"): 1.0})
    winner = whole_ranking(found, arch_of, count=50).winner
    assert (winner.metric, winner.layer) == ("h_score", "c4")


def test_no_recommendation_when_no_ranker_clears_the_baselines() -> None:
    found, arch_of = _shelf({("knn", "c5"): 1.0, ("logme", "c4"): 1.0})
    ranking = whole_ranking(found, arch_of, count=200)
    assert (ranking.winner.metric, ranking.winner.layer) == ("logme", "c4")  # as good as k-NN, no better
    assert ranking.winner.gain.value == 0 and not ranking.qualifies


def test_a_reversed_ranker_is_reported_but_never_picked() -> None:
    found, arch_of = _shelf({("logme", "c4"): -1.0})
    ranking = whole_ranking(found, arch_of, count=100)
    reversed_share = next(r.share for r in ranking.rankers if (r.metric, r.layer) == ("logme", "c4"))
    assert reversed_share.value == 0.0 and reversed_share.high < 0.5
    assert (ranking.winner.metric, ranking.winner.layer) != ("logme", "c4") and not ranking.qualifies


def test_the_whole_table_ranks_only_the_whole_rank_jobs_of_intermediate_sources(tmp_path) -> None:  # noqa: ANN001
    """benchmarks/real/whole_table.py's question 2 on a copy of the committed whole store with ranking
    jobs added: a perfect ranker on the detector's own tap is picked; the body-only jobs' scores (the
    shelf's rank jobs, without cls_tower) and the ImageNet sources are left out."""
    import importlib.util
    import json
    import shutil
    import sqlite3
    from pathlib import Path

    import pytest

    real = Path(__file__).resolve().parents[1] / "benchmarks" / "real"
    if not (real / "whole" / "results.sqlite").is_file():
        pytest.skip("benchmarks/real/whole/results.sqlite is not in this checkout")
    store = tmp_path / "results.sqlite"
    shutil.copy(real / "whole" / "results.sqlite", store)
    with sqlite3.connect(store) as db:
        whole = db.execute(
            "SELECT ap.dataset, ap.model, AVG(value) FROM ap JOIN jobs ON jobs.id = ap.job_id WHERE key = 'AP50' "
            'AND jobs.definition LIKE \'%"transfer": "whole"%\' GROUP BY ap.dataset, ap.model'
        ).fetchall()
        definition = json.dumps({"kind": "rank", "layers": ["c5", "fpn_ms", "cls_tower"]})
        for index, (dataset, model, ap50) in enumerate(whole):
            for background in (0, 2):
                job = f"whole-rank-{index}-{background}"
                db.execute("INSERT INTO jobs (id, kind, dataset, model, config_hash, definition, status) "
                           "VALUES (?, 'rank', ?, ?, '-', ?, 'done')", (job, dataset, model, definition))  # fmt: skip
                for metric, score in (("logme", ap50), ("knn", -ap50)):
                    row = (job, dataset, model, f"local+bg{background}", metric, score)
                    db.execute("INSERT INTO scores (job_id, dataset, model, layer, features, metric, score) "
                               "VALUES (?, ?, ?, 'fpn_ms', ?, ?, ?)", row)  # fmt: skip
    spec = importlib.util.spec_from_file_location("whole_table", real / "whole_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    scores, ap = module.ranking_rows(store)
    assert {r["metric"] for r in scores} == {"logme", "knn"} and not any("imagenet" in r["model"] for r in ap)
    text = "\n".join(module.ranking(store))
    assert "| logme | fpn_ms | 1.00 [" in text and "| knn | fpn_ms | 0.00 [" in text
    assert "Rule's pick: **logme on fpn_ms** (qualifies" in text


def test_the_caveat_line_reads_the_re_runs_that_whole_reruns_wrote(tmp_path) -> None:  # noqa: ANN001
    import importlib.util
    import json
    from pathlib import Path

    real = Path(__file__).resolve().parents[1] / "benchmarks" / "real"
    spec = importlib.util.spec_from_file_location("whole_table", real / "whole_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert "none yet" in module.reruns(tmp_path)
    for model, dataset, new, stored in (("mnv2-hardhat", "bccd", 0.61, 0.58), ("lite0-hardhat", "pothole", 0.40, 0.45)):
        row = {"dataset": dataset, "model": model, "trial": 0, "AP50": new, "stored_AP50": stored}
        (tmp_path / f"reproduce-{model}-{dataset}-0.json").write_text(json.dumps([row]))
    (tmp_path / "reproduce.json").write_text("[]")  # reproduce.py's default pair: not a re-run of the caveat
    line = module.reruns(tmp_path)
    assert "2 of 8: new - stored AP50 mean -0.010" in line
    assert "lite0-hardhat on pothole -0.050, mnv2-hardhat on bccd +0.030" in line
