"""Which backbones work: one model per timm family (its smallest variant) and every torchvision
classifier, each through backbone -> FCOS forward and backward -> rank features, at random init.

"Working" is all three of: the FCOS loss is finite; the gradient reaches the backbone's parameters;
the ranking features (RoI-Align means of the default layer on synthetic boxes) are not constant.
Each model is built at its card's input size (models with a fixed size need it). Resumable: results
go to a JSON-lines file, one line per model, and a model already there is not run again.

    python benchmarks/backbone_coverage.py [--library timm|torchvision|all] [--out FILE] [--limit N]

Prints the count of working models and the failures grouped by reason.
"""

from __future__ import annotations

import argparse
import json
import re
import time
import traceback
from collections import Counter
from pathlib import Path

import torch

OUT = Path(__file__).resolve().parent / "backbone_coverage.jsonl"


def smallest_per_timm_family() -> list[str]:
    """One architecture per timm module: the variant with the fewest parameters."""
    import timm

    chosen = []
    for module in timm.list_modules():
        names = timm.list_models(module=module)
        if not names:
            continue
        sizes = {}
        for name in names:
            try:
                with torch.device("meta"):
                    sizes[name] = sum(p.numel() for p in timm.create_model(name).parameters())
            except Exception:  # noqa: BLE001 - a variant that does not build is not the smallest
                continue
        if sizes:
            chosen.append(f"timm:{min(sizes, key=sizes.get)}")
    return chosen


def torchvision_classifiers() -> list[str]:
    import torchvision

    return [f"torchvision:{n}" for n in torchvision.models.list_models(module=torchvision.models)]


def _input_size(spec: str) -> int:
    if spec.startswith("timm:"):
        import timm

        config = timm.get_pretrained_cfg(spec.split(":", 1)[1].split("@")[0])
        size = getattr(config, "input_size", None) if config is not None else None
        return int(size[-1]) if size else 224
    return 224


def check(spec: str, records: list) -> dict:
    """Build, train one FCOS step and extract rank features; raises on the first failure."""
    from transferdet.models.backbones import build_backbone
    from transferdet.models.detectors import DetectorConfig, build_detector
    from transferdet.transfer.features import extract_layers

    size = _input_size(spec)
    torch.manual_seed(0)
    backbone = build_backbone(f"{spec}@random")
    model = build_detector(backbone, DetectorConfig("fcos", 3, min_size=size, max_size=size)).train()
    target = [{"boxes": torch.tensor([[10.0, 12.0, size * 0.6, size * 0.7]]), "labels": torch.tensor([1])}]
    loss = sum(model([torch.rand(3, size, size)], target).values())
    loss.backward()
    finite = bool(torch.isfinite(loss))
    reached = any(p.grad is not None and p.grad.abs().sum() > 0 for p in backbone.parameters())
    layer = "c5" if "c5" in backbone.channels else backbone.feature_names[-1]
    fresh = build_backbone(f"{spec}@random")
    features = extract_layers(fresh, records, [layer], "local", size, 4, "cpu")[layer].features
    varied = bool(features.std(axis=0).max() > 0)
    return {"finite": finite, "gradient": reached, "features_vary": varied, "layer": layer, "size": size}


def reason(error: str) -> str:
    """An error's first line with numbers and quoted names blanked, to group alike failures."""
    return re.sub(r"'[^']*'|\d+", "#", error.splitlines()[0])[:140]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--library", choices=["timm", "torchvision", "all"], default="all")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    from transferdet.data.formats import read
    from transferdet.data.synthetic import SynthConfig, synthesize

    specs = (smallest_per_timm_family() if args.library != "torchvision" else []) + (
        torchvision_classifiers() if args.library != "timm" else []
    )
    done = {json.loads(line)["spec"] for line in args.out.read_text().splitlines()} if args.out.is_file() else set()
    data = Path("/tmp/transferdet-coverage-data")
    if not data.exists():
        synthesize(SynthConfig(source="shapes", images=8, size=128, seed=0), data)
    records = read(data).records("train")[:4]
    for spec in [s for s in specs if s not in done][: args.limit]:
        start = time.perf_counter()
        try:
            row = {"spec": spec, **check(spec, records)}
            row["working"] = row["finite"] and row["gradient"] and row["features_vary"]
        except Exception as error:  # noqa: BLE001 - every failure is recorded with its reason
            where = traceback.extract_tb(error.__traceback__)[-1].filename.split("site-packages/")[-1]
            row = {"spec": spec, "working": False, "error": f"{type(error).__name__}: {error}", "where": where}
        row["seconds"] = round(time.perf_counter() - start, 1)
        with open(args.out, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)
    rows = [json.loads(line) for line in args.out.read_text().splitlines()]
    for library in ("timm", "torchvision"):
        mine = [r for r in rows if r["spec"].startswith(library)]
        print(f"{library}: {sum(r['working'] for r in mine)}/{len(mine)} working")
    for text, count in Counter(reason(r.get("error", "not working")) for r in rows if not r["working"]).most_common():
        print(f"{count:4d}  {text}")


if __name__ == "__main__":
    main()
