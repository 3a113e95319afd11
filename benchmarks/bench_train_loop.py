"""Training throughput of our loop against a bare PyTorch loop over the same model and data.

Both loops train the same torchvision FCOS on ``timm:resnet18`` (same initial weights) over the same
synthetic images (128 px, batch 8, no evaluation split), alternating, in this process. Our
loop is timed from the per-iteration timestamps it logs; the bare loop (DataLoader + forward +
backward + AdamW step, nothing else) with ``time.perf_counter``; the first ``--warmup``
iterations of each are left out. Images per second and our overhead are printed as JSON.
With ``--precision bf16`` (or fp16), our loop also runs with that ``precision`` recipe key, in the
same rounds, and the speed-up of a step over float32 is printed (``--size`` sets the image size).

    python benchmarks/bench_train_loop.py [--iterations 40] [--warmup 5] [--precision bf16] [--size 128]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from transferdet.data import formats
from transferdet.data.synthetic import SynthConfig, synthesize
from transferdet.data.transforms import TorchDetectionDataset, collate_detection, detection_transforms
from transferdet.train.assemble import build_model
from transferdet.train.engine import TrainJob, train
from transferdet.train.recipes import load_recipe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--precision", choices=["bf16", "fp16"], default=None)
    parser.add_argument("--size", type=int, default=128)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-train-"))
    synthesize(SynthConfig(source="digits", images=200, size=args.size, seed=0, test_fraction=0.0), work / "data")
    recipe = load_recipe(
        "quick",
        [
            f"iterations={args.iterations}",
            f"batch_size={args.batch}",
            "num_workers=1",
            "checkpoint_every=100000",
            f"min_size=[{args.size}]",
            f"max_size={args.size}",
            "precision=fp32",
        ],
    )
    job = TrainJob(work / "data", "timm:resnet18", "fcos", recipe, work / "ours-0", device="cpu")

    dataset = formats.read(work / "data")
    records = [r for r in dataset.records("train") if r.num_boxes > 0]

    def bare_loop() -> float:
        model = build_model(job, dataset, records)
        data = TorchDetectionDataset(
            records, detection_transforms(train=True, flip=recipe.flip), label_offset=model.label_offset
        )
        loader = torch.utils.data.DataLoader(
            data, batch_size=args.batch, shuffle=True, collate_fn=collate_detection, num_workers=1, drop_last=True
        )
        optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
        model.train()
        stamps: list[float] = []
        while len(stamps) < args.iterations:
            for images, targets in loader:
                loss = sum(model(images, targets).values())
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                stamps.append(time.perf_counter())
                if len(stamps) == args.iterations:
                    break
        return (stamps[-1] - stamps[args.warmup - 1]) / (args.iterations - args.warmup)

    def our_loop(run: str, precision: str = "fp32") -> float:
        train(replace(job, recipe=recipe.model_copy(update={"precision": precision}), out=work / f"ours-{run}"))
        logged = [json.loads(line) for line in (work / f"ours-{run}" / "log.jsonl").read_text().splitlines()]
        times = [row["time"] for row in logged if "loss" in row]
        return (times[-1] - times[args.warmup - 1]) / (args.iterations - args.warmup)

    # alternate, so that neither loop alone profits from a warmer process; best of each
    bare, ours, low = [], [], []
    for run in range(args.rounds):
        bare.append(bare_loop())
        ours.append(our_loop(str(run)))
        if args.precision:
            low.append(our_loop(f"{run}-{args.precision}", args.precision))
    bare_best, ours_best = min(bare), min(ours)
    extra = {}
    if args.precision:
        extra = {
            f"ours_{args.precision}_images_per_s": args.batch / min(low),
            f"fp32_over_{args.precision}": ours_best / min(low),
            f"ours_{args.precision}_s_per_iteration_each_round": low,
        }
    print(
        json.dumps(
            {
                "image_size": args.size,
                "iterations_timed": args.iterations - args.warmup,
                "batch": args.batch,
                "rounds": args.rounds,
                "bare_images_per_s": args.batch / bare_best,
                "ours_images_per_s": args.batch / ours_best,
                "overhead": ours_best / bare_best - 1.0,
                "bare_s_per_iteration_each_round": bare,
                "ours_s_per_iteration_each_round": ours,
                **extra,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
