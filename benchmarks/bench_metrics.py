"""Speed of the metric suite against its floor, timed in the same run.

The floor is one ``F.T @ F`` plus one symmetric eigendecomposition of the D x D result: what any
exact Gram-based metric must pay. ``suite`` computes logme, logme_regression, tlogme, h_score,
reg_h_score and transrate on the same features; "one by one" calls the six public functions
separately, each paying for its own statistics (as running the reference implementations one by
one does).

    python benchmarks/bench_metrics.py [--n 20000] [--d 1024] [--classes 20] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from transferdet import metrics

GRAM_METRICS = ["logme", "logme_regression", "tlogme", "h_score", "reg_h_score", "transrate"]


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
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    labels = rng.integers(args.classes, size=args.n)
    centres = rng.normal(size=(args.classes, args.d))
    features = np.abs(centres[labels] + rng.normal(size=(args.n, args.d)))
    boxes = rng.uniform(0, 1, size=(args.n, 4))

    tensor = torch.from_numpy(features)

    def floor() -> None:
        np.linalg.eigh(features.T @ features)

    def floor_torch() -> None:
        torch.linalg.eigh(tensor.T @ tensor)

    def suite() -> None:
        metrics.suite(features, labels, boxes, metrics=GRAM_METRICS)

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
    if args.one_by_one:
        result["one_by_one_s"] = best_of(1, one_by_one)
        result["one_by_one_over_floor"] = result["one_by_one_s"] / result["floor_s"]
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
