"""The shelf numbers docs/results.md and the README quote beside the report's tables: how far apart
one architecture's checkpoints are against one fine-tune's noise, how often the ImageNet checkpoint is
its group's best, and how each score orders a pretrained checkpoint against its architecture's
random init. Read from the report's CSVs (run `transferdet report benchmarks/real/shelf` first).

    .venv/bin/python benchmarks/real/shelf_facts.py [benchmarks/real/shelf]
"""

from __future__ import annotations

import csv
import itertools
import statistics
import sys
from collections import defaultdict
from pathlib import Path

SHELF = Path(__file__).resolve().parent / "shelf"


def trial_ap(folder: Path) -> dict[tuple[str, str], list[float]]:
    found: dict[tuple[str, str], list[float]] = defaultdict(list)
    with open(folder / "ap.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["key"] == "AP50":
                found[row["dataset"], row["model"]].append(float(row["value"]))
    return found


def checkpoints_against_noise(ap: dict[tuple[str, str], list[float]]) -> str:
    groups: dict[tuple[str, str], list[tuple[str, float]]] = defaultdict(list)
    for (target, model), trials in ap.items():
        if not model.endswith("-random"):
            groups[target, model.split("-")[0]].append((model, statistics.mean(trials)))
    pairs = [abs(a[1] - b[1]) for g in groups.values() for a, b in itertools.combinations(g, 2)]
    noise = [abs(t[0] - t[1]) for (_, m), t in ap.items() if not m.endswith("-random") and len(t) == 2]
    imagenet = sum(max(g, key=lambda x: x[1])[0].endswith("-imagenet") for g in groups.values())
    return (f"{len(pairs)} within-architecture pairs: median |difference in mean AP50| {statistics.median(pairs):.3f}; "
            f"median |trial 0 - trial 1| {statistics.median(noise):.3f}; the ImageNet checkpoint best in {imagenet} "
            f"of {len(groups)} groups")  # fmt: skip


def against_random(folder: Path, ap: dict[tuple[str, str], list[float]]) -> list[str]:
    scores: dict[tuple[str, str, str], dict[tuple[str, str], float]] = defaultdict(dict)
    with open(folder / "scores.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["score"]:
                scores[row["metric"], row["layer"], row["features"]][row["dataset"], row["model"]] = float(row["score"])
    lines = []
    for key, by in sorted(scores.items()):
        right = total = 0
        for (target, model), value in by.items():
            random = (target, model.split("-")[0] + "-random")
            if not model.endswith("-random") and random in by:
                total += 1
                right += (value > by[random]) == (statistics.mean(ap[target, model]) > statistics.mean(ap[random]))
        if total:
            lines.append(f"{' '.join(key)}: {right} of {total} pretrained-vs-random pairs ordered right")
    return lines


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else SHELF
    ap = trial_ap(folder)
    print(checkpoints_against_noise(ap))
    print("\n".join(against_random(folder, ap)))


if __name__ == "__main__":
    main()
