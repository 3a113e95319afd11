"""What ranking K models costs against fine-tuning the same K with the ``quick`` recipe, in one run.

On one dataset (default ``../shared/datasets/bccd``), at the ``quick`` recipe's image size (128 px on
the longer side, as its ``min_size = max_size = 128`` makes torchvision resize), CPU:

- ``rank``: :func:`transferdet.rank` of all K models (the ten default metrics, layer c5, all
  training images, a cold feature cache), timed as a whole; then, cold again each time, with what
  ``transferdet rank`` computes by default (the metrics plus the k-NN and model-size baselines:
  ``rank_default``) and with what the bench computes (all three baselines, the linear probe too:
  ``rank_bench``);
- ``fine-tune``: ``train`` of each model with ``quick`` (FCOS, one trial, seed 0), timed each,
  evaluation included (what a user waits for).

Printed as JSON with the ratio rank / fine-tune (the speed issue asks for at most 2%).

    python benchmarks/bench_rank_vs_finetune.py [--data PATH] [--models SPEC,SPEC,...] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from transferdet.train.engine import TrainJob, train
from transferdet.train.recipes import load_recipe
from transferdet.transfer.rank import BENCH_SCORES, DEFAULT_METRICS, DEFAULT_SCORES, RankSettings, rank

SHARED = Path(__file__).resolve().parents[2] / "shared"
MODELS = ",".join(
    [
        f"torchvision:mobilenet_v2@{SHARED / 'weights' / 'mobilenet_v2-b0353104.pth'}",
        "torchvision:mobilenet_v2@random",
        "timm:resnet18@random",
    ]
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=SHARED / "datasets" / "bccd")
    parser.add_argument("--models", default=MODELS)
    parser.add_argument("--out", type=Path, default=None, help="where the fine-tuning runs go (default: a temp dir)")
    args = parser.parse_args()
    models = args.models.split(",")
    work = args.out or Path(tempfile.mkdtemp(prefix="bench-rank-vs-finetune-"))
    recipe = load_recipe("quick")
    size = recipe.max_size
    result: dict = {"data": str(args.data), "image_size": size, "threads": torch.get_num_threads(), "models": models}

    settings = RankSettings(image_size=size, device="cpu")
    variants = (("rank", DEFAULT_METRICS), ("rank_default", DEFAULT_SCORES), ("rank_bench", BENCH_SCORES))
    for key, scores in variants:
        start = time.perf_counter()
        rows = rank(args.data, models, list(scores), settings=settings, cache_dir=work / f"feature-cache-{key}")
        result[f"{key}_s"] = round(time.perf_counter() - start, 2)
        result[f"{key}_rows_ok"] = sum(row["status"] == "ok" for row in rows)

    result["finetune_s"] = {}
    for index, spec in enumerate(models):
        start = time.perf_counter()
        train(TrainJob(args.data, spec, "fcos", recipe, work / f"run-{index}", seed=0, device="cpu"))
        result["finetune_s"][spec] = round(time.perf_counter() - start, 2)
        print(json.dumps({spec: result["finetune_s"][spec]}), flush=True)
    total = sum(result["finetune_s"].values())
    result["finetune_total_s"] = round(total, 2)
    for key, _ in variants:
        result[f"{key}_over_finetune"] = round(result[f"{key}_s"] / total, 4)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
