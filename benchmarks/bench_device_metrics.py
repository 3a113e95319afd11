"""The ten-metric suite on a torch device against the NumPy path, timed in the same run.

On N x D features with C classes (the speed issue's N = 20000, D = 1024, C = 20; LEEP and NCE on a
1000-class source classifier's probabilities), ``suite`` runs on the host (NumPy) and on
``--device`` (the features moved there once, before the clock starts; synchronised before each
clock read). Printed as JSON: both times (best of ``--repeats``), their ratio, and the largest
relative difference between the two paths' scores (1e-6 is the issue's bound). With ``--device
cpu`` the device path runs on CPU tensors: a check of the code path, not of its speed.

    python benchmarks/bench_device_metrics.py [--device cuda] [--n 20000] [--d 1024] [--classes 20]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from transferdet.metrics import suite

METRICS = ["logme", "tlogme", "h_score", "reg_h_score", "transrate", "sfda", "etran", "gbc", "leep", "nce"]


def _best(repeats: int, device: torch.device, run) -> tuple[float, dict[str, float]]:  # noqa: ANN001
    best, result = float("inf"), {}
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        result = run()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--d", type=int, default=1024)
    parser.add_argument("--classes", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    labels = rng.integers(args.classes, size=args.n)
    features = rng.normal(size=(args.n, args.d)) + 0.3 * rng.normal(size=(args.classes, args.d))[labels]
    boxes, probs = rng.random((args.n, 4)), rng.dirichlet(np.ones(1000), size=args.n)
    device = torch.device(args.device)
    on_device = torch.from_numpy(features).to(device)

    host_s, host = _best(args.repeats, torch.device("cpu"), lambda: suite(features, labels, boxes, probs, METRICS))
    device_s, moved = _best(args.repeats, device, lambda: suite(on_device, labels, boxes, probs, METRICS))
    gap = max(abs(moved[k] - host[k]) / max(abs(host[k]), 1e-300) for k in host)
    result = {
        "n": args.n,
        "d": args.d,
        "classes": args.classes,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu tensors",
        "host_s": round(host_s, 4),
        "device_s": round(device_s, 4),
        "host_over_device": round(host_s / device_s, 2),
        "largest_relative_difference": gap,
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
