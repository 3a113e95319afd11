"""The demo: the whole product on built-in synthetic data, offline (``transferdet demo``).

1. a zoo of backbones: two architectures at random init and pretrained on synthetic source
   domains (letters, digits) for different lengths, cached in the user cache folder;
2. a synthetic target dataset unlike the sources (procedural shapes, with noise and clutter);
3. a benchmark (the machinery of ``transferdet bench``, its config built here): rank the zoo with
   every metric, fine-tune each backbone, correlate, report.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import yaml

from transferdet.atomic import atomic_write_bytes
from transferdet.bench.config import BenchConfig, DatasetEntry
from transferdet.data.synthetic import SynthConfig
from transferdet.models.model_card import ModelEntry

# (name, architecture, source domain or None for random init, pretraining steps): two
# architectures, random or pretrained on letters or digits, long or short
ZOO = (
    ("resnet10t-random", "timm:resnet10t", None, 0),
    ("resnet10t-letters-200", "timm:resnet10t", "letters", 200),
    ("resnet10t-letters-30", "timm:resnet10t", "letters", 30),
    ("resnet10t-digits-200", "timm:resnet10t", "digits", 200),
    ("mobilenetv3s-random", "timm:mobilenetv3_small_100", None, 0),
    ("mobilenetv3s-letters-200", "timm:mobilenetv3_small_100", "letters", 200),
)
TARGET = {"source": "shapes", "images": 240, "size": 128, "noise": 0.05, "clutter": 2}
# the TMOD paper's transfer protocol in short: the backbone body frozen (BatchNorm statistics
# included), new FPN and heads trained; what the ranking metrics measure is then exactly the
# quality of the frozen features
FINE_TUNE = {
    "epochs": 12,
    "fpn_channels": 64,
    "freeze_body": True,
    "norm": "frozen_bn",
    "warmup_iterations": 20,
    "checkpoint_every": 50,
}
# smoke: every stage on a toy scale (about a minute; the numbers mean nothing)
SMOKE_TARGET = {"images": 30, "size": 64}
SMOKE_FINE_TUNE = {"iterations": 3, "min_size": [64], "max_size": 64, "test_size": 64, "warmup_iterations": 1}

# (zoo member name, steps done, steps in all)
PretrainProgress = Callable[[str, int, int], None]


def build_zoo(
    device: str, smoke: bool = False, progress: PretrainProgress | None = None
) -> list[tuple[ModelEntry, dict | None]]:
    """Pretrain (or reuse from the cache) every zoo backbone; returns its bench entries with the
    pretraining record of each pretrained one (None for random init)."""
    from transferdet.zoo.pretrain import PretrainConfig, pretrain, pretrained_path, read_record

    members = []
    for name, arch, source, steps in ZOO:
        if source is None:
            members.append((ModelEntry(name=name, spec=f"{arch}@random"), None))
            continue
        config = PretrainConfig(source=source, arch=arch, steps=max(1, steps // 100) if smoke else steps)
        path = pretrained_path(config)
        if path.is_file():
            record = read_record(path)
        else:
            report = None if progress is None else (lambda step, total, loss, n=name: progress(n, step, total))
            record = pretrain(config, path, device, report)
        members.append((ModelEntry(name=name, spec=f"{arch}@{path.resolve()}"), record))
    return members


def target_config(seed: int, smoke: bool = False) -> SynthConfig:
    return SynthConfig(seed=seed, **{**TARGET, **(SMOKE_TARGET if smoke else {})})


def target_folder(out: Path, target: SynthConfig) -> Path:
    """Named by its settings: a re-run with other settings draws (and benchmarks) a new dataset."""
    return out / f"data-{target.source}-{target.images}x{target.size}px-seed{target.seed}"


def draw_target(out: Path, target: SynthConfig, progress: Callable[[int], None] | None = None) -> Path:
    """The target dataset (drawn once: written atomically, so present means complete) and a
    picture of it in ``out/data.png``."""
    from transferdet.data.show import render_grid, save_grid
    from transferdet.data.synthetic import synthesize

    folder = target_folder(out, target)
    if not folder.exists():
        dataset = synthesize(target, folder, progress=progress)
        save_grid(render_grid(dataset, "train", 16, target.seed), out / "data.png")
    return folder


def demo_config(models: list[ModelEntry], data: Path, target: SynthConfig, smoke: bool = False) -> BenchConfig:
    """The demo's benchmark: every metric at c4 and c5, FCOS fine-tuning with the frozen protocol."""
    return BenchConfig(
        datasets=[DatasetEntry(name=f"synthetic-{target.source}", path=data.resolve())],
        models=models,
        detector="fcos",
        recipe="quick",
        recipe_overrides={**FINE_TUNE, **(SMOKE_FINE_TUNE if smoke else {})},
        trials=1,
        seed=target.seed,
        layers=["c4", "c5"],
        features=["local"],
        image_size=target.size,
        target="AP50",
    )


def write_config(config: BenchConfig, path: Path) -> None:
    """The config as a CONFIG.yaml, so ``transferdet bench`` can re-run or extend the demo."""
    atomic_write_bytes(path, yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False).encode())
