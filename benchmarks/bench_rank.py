"""Ranking's feature extraction against the bare forward pass of the same backbone, in one run.

On the first ``--images`` images of a real dataset (default ``../shared/datasets/bccd``) at
``--image-size`` px, batch 8, for each backbone:

- ``bare``: the backbone's forward pass alone (float32, default memory format) on the same images,
  decoded, resized and batched beforehand (the floor: what any extraction must at least do);
- ``c5``: :func:`extract_layers` of one layer (decoding, resizing, RoI-Align and pooling included);
- ``c2-c5``: four layers in one call;
- ``bf16``: one layer under ``--precision bf16`` (autocast), and what ``auto`` picks on this CPU.

Each timing is the best of ``--repeats``, the variants alternating. Printed as JSON, with the
ratios the speed issue names: bare / c5 (>= 0.9 wanted), c2-c5 / c5 (<= 1.15), fp32 / bf16 (>= 2
where the CPU has bf16 units).

    python benchmarks/bench_rank.py [--images 48] [--image-size 512] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from transferdet import precision
from transferdet.data import formats
from transferdet.models.backbones import build_backbone
from transferdet.transfer.features import _batches, _load, _padded, extract_layers

SHARED = Path(__file__).resolve().parents[2] / "shared"


def _bare(backbone: torch.nn.Module, batches: list[torch.Tensor]) -> float:
    start = time.perf_counter()
    with torch.no_grad():
        for images in batches:
            backbone(images)
    return time.perf_counter() - start


def _extraction(backbone, records, layers, size, mode="fp32") -> float:  # noqa: ANN001
    start = time.perf_counter()
    extract_layers(backbone, records, layers, image_size=size, batch_size=8, precision=mode)
    return time.perf_counter() - start


def measure(spec: str, records: list, size: int, repeats: int) -> dict:
    torch.manual_seed(0)
    backbone = build_backbone(spec).eval()
    mean, std = torch.tensor(backbone.mean).view(3, 1, 1), torch.tensor(backbone.std).view(3, 1, 1)
    decoded = [_padded([_load(records[i], size, mean, std) for i in b]) for b in _batches(records, 8)]
    plain = build_backbone(spec).eval()  # a copy left in the default memory format for the floor
    plain.load_state_dict(backbone.state_dict())
    times: dict[str, list[float]] = {"bare": [], "c5": [], "c2-c5": [], "bf16": []}
    _extraction(backbone, records[:8], ["c5"], size)  # warm-up
    for _ in range(repeats):
        times["bare"].append(_bare(plain, decoded))
        times["c5"].append(_extraction(backbone, records, ["c5"], size))
        times["c2-c5"].append(_extraction(backbone, records, ["c2", "c3", "c4", "c5"], size))
        times["bf16"].append(_extraction(backbone, records, ["c5"], size, "bf16"))
    best = {k: min(v) for k, v in times.items()}
    return {
        "seconds": {k: round(v, 3) for k, v in best.items()},
        "bare / c5": round(best["bare"] / best["c5"], 3),
        "c2-c5 / c5": round(best["c2-c5"] / best["c5"], 3),
        "fp32 / bf16": round(best["c5"] / best["bf16"], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=SHARED / "datasets" / "bccd")
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--image-size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--models", default="timm:resnet18,torchvision:mobilenet_v2")
    args = parser.parse_args()
    records = [r for r in formats.read(args.data).records("train") if r.num_boxes][: args.images]
    result = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(),
            "native_bf16": precision.cpu_has_native_bf16(),
            "bf16_probe_speedup": precision.bf16_probe_speedup() if precision.cpu_has_native_bf16() else None,
            "auto_picks": precision.resolve("auto", "cpu"),
        },
        "images": len(records),
        "image_size": args.image_size,
    }
    for spec in args.models.split(","):
        result[spec] = measure(spec, records, args.image_size, args.repeats)
        print(json.dumps({spec: result[spec]}), flush=True)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
