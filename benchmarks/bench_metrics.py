"""Speed of the metric suite against its floor, timed in the same run.

The floor is one ``F.T @ F`` plus one symmetric eigendecomposition of the D x D result: what any
exact Gram-based metric must pay. ``suite`` computes logme, logme_regression, tlogme, h_score,
reg_h_score and transrate on the same features; ``ten`` the whole default suite of ``transferdet
rank`` (those but logme_regression, plus sfda, etran, gbc, leep and nce, the last two on a
1000-class source classifier's probabilities); "one by one" calls the six public functions
separately, each paying for its own statistics (as running the reference implementations one by
one does).

``ten_bound`` is the arithmetic no exact computation of the ten avoids, each piece done by the
fastest primitive at hand with nothing in between, timed in the same run: the floor; a second
``F.T @ F`` (SFDA's second discriminant is fitted on features re-mixed sample by sample, whose
scatter matrix no shared statistic gives: an N x D x D product of its own); C + 2 Choleskys of
D x D matrices (TransRate's per-class coding rates, SFDA's two discriminants); one product of F
with the D x (2C + 64) matrix of class directions and principal axes (the first discriminant's
probabilities, ETran's class scores and GBC's projection, fused into one read of F), one with the
second discriminant's D x C directions (it depends on the re-mixed scatter, so it cannot join the
first), and ETran's log-sum-exp of every row. GBC's principal axes and every other step are left
out, so the ten cannot come below this.

    python benchmarks/bench_metrics.py [--n 20000] [--d 1024] [--classes 20] [--repeats 3] [--parts]

``--parts`` also times the suite's steps one after another, as one suite call runs them (best of
``--repeats``): input checks, the Gram pass with TransRate's class rates, the eigendecomposition,
and the two metrics that pass over the features again.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time

import numpy as np
import torch

from transferdet import metrics
from transferdet.metrics._checks import as_features, as_labels, as_targets
from transferdet.metrics._lapack import cholesky_in_place
from transferdet.metrics.gram import GramStats
from transferdet.metrics.hscore import reg_h_score_from
from transferdet.metrics.logme import logme_regression_from
from transferdet.metrics.rows import HostRows
from transferdet.metrics.transrate import EPS as TRANSRATE_EPS

GRAM_METRICS = ["logme", "logme_regression", "tlogme", "h_score", "reg_h_score", "transrate"]
DEFAULT_METRICS = ["logme", "tlogme", "h_score", "reg_h_score", "transrate", "sfda", "etran", "gbc", "leep", "nce"]
SOURCE_CLASSES = 1000  # an ImageNet head's probabilities for LEEP and NCE


def best_of(repeats: int, run) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--d", type=int, default=1024)
    parser.add_argument("--classes", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--one-by-one", action="store_true", help="also time the six functions called separately")
    parser.add_argument("--parts", action="store_true", help="also time the suite's steps one after another")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    labels = rng.integers(args.classes, size=args.n)
    centres = rng.normal(size=(args.classes, args.d))
    features = np.abs(centres[labels] + rng.normal(size=(args.n, args.d)))
    boxes = rng.uniform(0, 1, size=(args.n, 4))
    logits = rng.normal(size=(args.n, SOURCE_CLASSES))
    source_probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)

    tensor = torch.from_numpy(features)

    def floor() -> None:
        np.linalg.eigh(features.T @ features)

    def floor_torch() -> None:
        torch.linalg.eigh(tensor.T @ tensor)

    def suite() -> None:
        metrics.suite(features, labels, boxes, metrics=GRAM_METRICS)

    def ten() -> None:
        metrics.suite(features, labels, boxes, source_probs, metrics=DEFAULT_METRICS)

    def one_by_one() -> None:
        metrics.logme(features, labels)
        metrics.logme_regression(features, boxes)
        metrics.tlogme(features, labels, boxes)
        metrics.h_score(features, labels)
        metrics.reg_h_score(features, labels)
        metrics.transrate(features, labels)

    result = {"n": args.n, "d": args.d, "classes": args.classes}
    # the floor with either library, whichever is faster here (the suite uses both)
    result["floor_numpy_s"] = best_of(args.repeats, floor)
    result["floor_torch_s"] = best_of(args.repeats, floor_torch)
    result["floor_s"] = min(result["floor_numpy_s"], result["floor_torch_s"])
    result["suite_s"] = best_of(args.repeats, suite)
    result["suite_over_floor"] = result["suite_s"] / result["floor_s"]
    result["ten_s"] = best_of(args.repeats, ten)
    result["ten_over_floor"] = result["ten_s"] / result["floor_s"]
    result["ten_bound_parts_s"] = ten_bound(features, args.classes, args.repeats)
    result["ten_bound_s"] = sum(result["ten_bound_parts_s"].values())
    result["ten_bound_over_floor"] = result["ten_bound_s"] / result["floor_s"]
    result["ten_over_bound"] = result["ten_s"] / result["ten_bound_s"]
    if args.one_by_one:
        result["one_by_one_s"] = best_of(1, one_by_one)
        result["one_by_one_over_floor"] = result["one_by_one_s"] / result["floor_s"]
    if args.parts:
        result["parts_s"] = suite_parts(features, labels, boxes, args.repeats)
    print(json.dumps(result, indent=1))


def ten_bound(features: np.ndarray, classes: int, repeats: int) -> dict[str, float]:
    """The work no exact computation of the ten default metrics avoids (see the module's text),
    each piece timed alone (best of ``repeats``): one after another, each would pay for the
    previous library's BLAS threads still spinning on the two cores."""
    d = features.shape[1]
    gram = features.T @ features
    directions, second = np.ones((d, 2 * classes + 64)), np.ones((d, classes))

    def choleskys() -> None:
        for _ in range(classes + 2):
            cholesky_in_place(gram.copy())  # the fastest Cholesky here (LAPACK, GIL released)

    pieces = {
        "gram": lambda: features.T @ features,
        "eigendecomposition": lambda: np.linalg.eigh(gram),
        "sfda_remixed_scatter": lambda: features.T @ features,
        "choleskys": choleskys,
        "first_projections": lambda: features @ directions,
        "second_projection": lambda: features @ second,
        "energy_logsumexp": lambda: HostRows(features).row_logsumexp(),
    }
    return {name: best_of(repeats, run) for name, run in pieces.items()}


def suite_parts(features: np.ndarray, labels: np.ndarray, boxes: np.ndarray, repeats: int) -> dict[str, float]:
    """Each step's best time over ``repeats`` runs of the whole sequence."""
    best: dict[str, float] = {}
    for _ in range(repeats):
        marks = [("start", time.perf_counter())]
        f = as_features(features)
        y = as_labels(labels, len(f))
        targets = as_targets(boxes, len(f), "boxes")
        marks.append(("input checks", time.perf_counter()))
        stats = GramStats.of(f, y, rate_eps=TRANSRATE_EPS)
        marks.append(("gram pass with class rates", time.perf_counter()))
        _ = stats.eigen
        marks.append(("eigendecomposition", time.perf_counter()))
        logme_regression_from(stats, f, targets)
        marks.append(("logme_regression", time.perf_counter()))
        reg_h_score_from(stats, f)
        marks.append(("reg_h_score", time.perf_counter()))
        for (_, before), (name, after) in itertools.pairwise(marks):
            best[name] = min(best.get(name, float("inf")), after - before)
    return best


if __name__ == "__main__":
    main()
