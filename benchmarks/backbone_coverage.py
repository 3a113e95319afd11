"""Which backbones work: one model per timm family (its smallest variant) and every torchvision
classifier, each through backbone -> FCOS forward and backward -> rank features, at random init.

"Working" is all three of: the FCOS loss is finite; the gradient reaches the backbone's parameters;
the ranking features (RoI-Align means of the default layer on synthetic boxes) are not constant.
Images are 128 px; a model that only runs at the size it was built for (BEiT, PiT, LeViT, ...) sees
them resized to its card's size, its maps resampled back to the image's grid. Resumable: results
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
FAMILIES = OUT.with_name("backbone_coverage_timm.txt")
SIZE = 128  # the image side: a model that runs at one size only sees the image resized to it


def smallest_per_timm_family() -> list[str]:
    """One architecture per timm family (the leading letters of its name: ``vit``, ``deit``,
    ``resnet``, ...): the variant with the fewest parameters (counted on the meta device; the
    list is kept in FAMILIES for the installed timm, as counting takes minutes)."""
    import timm

    if FAMILIES.is_file() and FAMILIES.read_text().splitlines()[0] == f"# timm {timm.__version__}":
        return FAMILIES.read_text().splitlines()[1:]
    specs = _count_families()
    FAMILIES.write_text("\n".join([f"# timm {timm.__version__}", *specs]) + "\n")
    return specs


def _count_families() -> list[str]:
    import timm

    chosen: dict[str, tuple[int, str]] = {}
    for name in timm.list_models():
        with torch.device("meta"):
            size = sum(p.numel() for p in timm.create_model(name).parameters())
        family = re.match(r"[a-z]+", name).group(0)
        chosen[family] = min(chosen.get(family, (size, name)), (size, name))
    return [f"timm:{name}" for _, name in sorted(chosen.values(), key=lambda c: c[1])]


def torchvision_classifiers() -> list[str]:
    import torchvision

    return [f"torchvision:{n}" for n in torchvision.models.list_models(module=torchvision.models)]


def check(spec: str, records: list) -> dict:
    """Build, train one FCOS step and extract rank features; raises on the first failure."""
    from transferdet.models.backbones import build_backbone
    from transferdet.models.detectors import DetectorConfig, build_detector
    from transferdet.transfer.features import extract_layers

    size = SIZE
    torch.manual_seed(0)
    backbone = build_backbone(f"{spec}@random")
    model = build_detector(backbone, DetectorConfig("fcos", 3, min_size=size, max_size=size)).train()
    target = [{"boxes": torch.tensor([[10.0, 12.0, size * 0.6, size * 0.7]]), "labels": torch.tensor([1])}]
    loss = sum(model([torch.rand(3, size, size)], target).values())
    loss.backward()
    finite = bool(torch.isfinite(loss))
    reached = any(p.grad is not None and p.grad.abs().sum() > 0 for p in backbone.parameters())
    layer = "c5"  # rank's default: a backbone without a stride-32 map reads its deepest one
    # no optimiser step was taken: the backbone's weights are still its random init
    features = extract_layers(backbone, records, [layer], "local", size, 4, "cpu")[layer].features
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
