"""Does ranking under bf16 autocast order the models as float32 does? One run per dataset.

Ranks ``--models`` (default: five backbones, three with real ImageNet weights from ``../shared``)
on each dataset (default: bccd, and 200 synthetic digits made here) with ``--precision fp32`` and
``bf16``, and prints per metric: Kendall's tau between the two orders, whether the order is the
same, and the largest relative change of a score. Features are extracted once per precision (one
feature cache per run, cold).

    python benchmarks/bf16_ranking.py [--max-images 100] [--image-size 512] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau

from transferdet.data.synthetic import SynthConfig, synthesize
from transferdet.transfer.rank import RankSettings, rank

SHARED = Path(__file__).resolve().parents[2] / "shared"
WEIGHTS = SHARED / "weights"
MODELS = [
    f"torchvision:mobilenet_v2@{WEIGHTS / 'mobilenet_v2-b0353104.pth'}",
    f"timm:efficientnet_lite0@{WEIGHTS / 'efficientnet-lite0-57934424.pth'}",
    f"timm:efficientnet_lite2@{WEIGHTS / 'efficientnet-lite2-9656183e.pth'}",
    "timm:resnet18@random",
    "torchvision:mobilenet_v2@random",
]


def scores(rows: list[dict]) -> dict[str, dict[str, float]]:
    """{metric: {model: score}} for the rows that scored."""
    table: dict[str, dict[str, float]] = {}
    for row in rows:
        if row["score"] is not None:
            table.setdefault(row["metric"], {})[row["model"]] = row["score"]
    return table


def compare(full: dict[str, dict[str, float]], low: dict[str, dict[str, float]]) -> dict[str, dict]:
    out = {}
    for metric in full:
        models = [m for m in full[metric] if m in low.get(metric, {})]
        a = np.array([full[metric][m] for m in models])
        b = np.array([low[metric][m] for m in models])
        tau = kendalltau(a, b).statistic if len(models) > 1 else float("nan")
        out[metric] = {
            "models": len(models),
            "kendall_tau": round(float(tau), 4),
            "same_order": bool(np.array_equal(np.argsort(-a), np.argsort(-b))),
            "max_relative_change": float(np.max(np.abs(b - a) / np.maximum(np.abs(a), 1e-12))),
            "scores_fp32_bf16": {
                m.split("@")[0] + "@" + Path(m.split("@")[1]).name: [x, z] for m, x, z in zip(models, a, b, strict=True)
            },
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-images", type=int, default=100)
    parser.add_argument("--image-size", type=int, default=512)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    work = args.out or Path(tempfile.mkdtemp(prefix="bf16-ranking-"))
    digits = work / "digits"
    if not digits.exists():
        synthesize(SynthConfig(source="digits", images=200, size=128, seed=0), digits)
    datasets = {"bccd": (SHARED / "datasets" / "bccd", args.image_size), "digits": (digits, 128)}
    result = {}
    for name, (path, size) in datasets.items():
        per_precision = {}
        for mode in ("fp32", "bf16"):
            settings = RankSettings(image_size=size, max_images=args.max_images, device="cpu", precision=mode)
            per_precision[mode] = scores(rank(path, MODELS, settings=settings, cache_dir=work / f"cache-{name}"))
        result[name] = compare(per_precision["fp32"], per_precision["bf16"])
        print(json.dumps({name: result[name]}), flush=True)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
