"""Speed of the metric suite against its floor, timed in the same run.

The floor is one ``F.T @ F`` plus one symmetric eigendecomposition of the D x D result: what any
exact Gram-based metric must pay. ``suite`` computes logme, logme_regression, tlogme, h_score,
reg_h_score and transrate on the same features; ``ten`` the whole default suite of ``transferdet
rank`` (those but logme_regression, plus sfda, etran, gbc, leep and nce, the last two on a
1000-class source classifier's probabilities); "one by one" calls the six public functions
separately, each paying for its own statistics (as running the reference implementations one by
one does).

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
from transferdet.metrics.gram import GramStats
from transferdet.metrics.hscore import reg_h_score_from
from transferdet.metrics.logme import logme_regression_from
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
    if args.one_by_one:
        result["one_by_one_s"] = best_of(1, one_by_one)
        result["one_by_one_over_floor"] = result["one_by_one_s"] / result["floor_s"]
    if args.parts:
        result["parts_s"] = suite_parts(features, labels, boxes, args.repeats)
    print(json.dumps(result, indent=1))


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
