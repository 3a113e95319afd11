"""``transferdet train`` and ``transferdet eval``: fine-tune with a named recipe, evaluate a run."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress, TaskID
from rich.table import Table

from transferdet.cli.common import (
    DeviceOption,
    PluginOption,
    err_console,
    out_console,
    progress_bar,
    use_plugins,
)
from transferdet.cli.data_options import AS_READ, DataArgs, data_options
from transferdet.devices import default_device
from transferdet.errors import TransferdetError

RunOption = Annotated[Path, typer.Option("--checkpoint", help="Training run folder (a `transferdet train --out`).")]
RecipeOption = Annotated[
    str,
    typer.Option(
        help="quick, voc_c4_24k, coco_fpn_1x, coco_fpn_2x, tmod_frozen, tmod_two_step, adamw_1x, retinanet_1x_adamw "
        "(transferdet recipe list; recipe show NAME for the schedule)."
    ),
]
DetectorOption = Annotated[
    str | None,
    typer.Option(
        help="faster_rcnn_fpn, faster_rcnn_c4, mask_rcnn_fpn, retinanet, fcos or ssd (default: the recipe's own; "
        "a recipe that fixes one refuses another)."
    ),
]
SetOption = Annotated[list[str], typer.Option("--set", help="Override a recipe key: key=value (repeat).")]
DistillFromOption = Annotated[
    Path | None,
    typer.Option(help="Distil a classification teacher (a `transferdet distill teacher` folder) into the detector."),
]
ClsWeightOption = Annotated[
    float, typer.Option(help="Weight of the classification distillation term (KL on positives).")
]
LocWeightOption = Annotated[float, typer.Option(help="Weight of the localization distillation term (L1 of crops).")]
TemperatureOption = Annotated[float, typer.Option(help="Softmax temperature of the distillation.")]


def _recipe(name: str, set_: list[str], config: Path | None, quiet: bool):  # noqa: ANN202 - a Recipe
    from transferdet.data.formats.base import load_yaml
    from transferdet.train.recipes import load_recipe

    overrides = load_yaml(config) if config else None
    if overrides is not None and not isinstance(overrides, dict):
        raise TransferdetError(f"{config}: expected a mapping of recipe keys")
    recipe = load_recipe(name, set_, overrides)
    if not quiet:
        err_console.print(
            f"recipe [bold]{recipe.name}[/bold]: {recipe.description or 'custom'}; {recipe.frozen_parts()}"
        )
        err_console.print(recipe.model_dump_json(exclude_none=True))
    return recipe


def _metrics_table(final: dict, title: str) -> Table:
    table = Table(title=title)
    cells = []
    from transferdet.train.trials import SUMMARY_KEYS

    for key in SUMMARY_KEYS:
        table.add_column(key, justify="right")
        value, spread = final.get(key), final.get(f"{key}_std")
        cells.append(
            "n/a" if value is None else (f"{value:.3f} ± {spread:.3f}" if spread is not None else f"{value:.3f}")
        )
    table.add_row(*cells)
    return table


def _trial_progress(bar: Progress, trials: int):  # noqa: ANN202 - a TrialCallback
    tasks: dict[int, TaskID] = {}

    def show(trial: int, iteration: int, total: int, scalars: dict[str, float]) -> None:
        if trial not in tasks:
            tasks[trial] = bar.add_task("train", total=total)
        where = "" if trials == 1 else f"trial {trial} "
        description = f"train {where}loss {scalars['loss']:.3f} lr {scalars['lr']:.2e}"
        bar.update(tasks[trial], completed=iteration, total=total, description=description)

    return show


SourceOption = Annotated[
    str,
    typer.Option(
        "--backbone",
        help="Backbone or detector spec ARCH[@WEIGHTS]: a backbone checkpoint, a run folder, or a detection file "
        "(torchvision:fasterrcnn_resnet50_fpn@FILE: torchvision's, detectron2's .pkl or MMDetection's layout).",
    ),
]
TransferOption = Annotated[
    str,
    typer.Option(
        help="From a detector source: whole (every tensor whose role and shape fit; class logits re-initialised) "
        "or body (its backbone body only). Ignored for a backbone checkpoint."
    ),
]
ClassMapOption = Annotated[
    str,
    typer.Option(
        help="Whole transfer: copy the class-logit rows of target classes whose names equal a source class's "
        "(auto, ignoring case), none, or a YAML file mapping target class names to source class names."
    ),
]


def _detector_for(settings, detector: str | None, backbone: str, transfer: str) -> str:  # noqa: ANN001 - a Recipe
    """The detector to train: as asked, else a whole detector source's own kind, else the recipe's."""
    from transferdet.models.detector_sources import source_kind
    from transferdet.train.recipes import recipe_detector

    if transfer not in ("whole", "body"):
        raise TransferdetError(f"--transfer {transfer!r}: choose whole or body")
    return recipe_detector(settings, detector or (source_kind(backbone) if transfer == "whole" else None))


def _show(final: dict, run_dir: Path, title: str) -> None:
    """What a detector source transferred (as the run's manifest records it), then the metrics."""
    from transferdet.runs import RunDir

    recorded = RunDir(run_dir).recorded_job() or {}
    line = (recorded.get("transfer_report") or {}).get("line")
    if line:
        out_console.print(line)
    out_console.print(_metrics_table(final, title))


@data_options
def train(
    data: Annotated[Path, typer.Option("--data", help="Detection dataset (folder or annotation file).")],
    backbone: SourceOption,
    out: Annotated[Path, typer.Option(help="Output folder of the run.")],
    detector: DetectorOption = None,
    transfer: TransferOption = "whole",
    class_map: ClassMapOption = "auto",
    recipe: RecipeOption = "quick",
    set_: SetOption = [],  # noqa: B006 - typer reads the default
    config: Annotated[Path | None, typer.Option(help="YAML file of recipe keys to override.")] = None,
    trials: Annotated[int, typer.Option(help="Number of seeded trials (seeds S, S+1, ...).")] = 1,
    seed: Annotated[int, typer.Option(help="Seed of data order, augmentation and initialisation.")] = 0,
    device: DeviceOption = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run(s) in --out from their checkpoints.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the final metrics as one JSON object.")] = False,
    distill_from: DistillFromOption = None,
    distill_cls_weight: ClsWeightOption = 0.4,
    distill_loc_weight: LocWeightOption = 0.15,
    distill_temperature: TemperatureOption = 2.0,
    plugin: PluginOption = [],  # noqa: B006 - typer reads the default
    data_args: DataArgs = AS_READ,
) -> None:
    """Fine-tune a detector on a backbone with a named recipe; evaluate with COCO metrics."""
    use_plugins(plugin)
    from transferdet.distill.distiller import DistillSettings
    from transferdet.train.job import TrainJob
    from transferdet.train.trials import train_trials

    if trials < 1:
        raise TransferdetError("--trials must be at least 1")
    main = int(os.environ.get("RANK", "0")) == 0  # under torchrun only rank 0 reports
    settings = _recipe(recipe, set_, config, quiet=as_json)
    detector = _detector_for(settings, detector, backbone, transfer)
    distill = None
    if distill_from is not None:
        distill = DistillSettings(distill_from, distill_cls_weight, distill_loc_weight, distill_temperature)
    device = default_device(device)
    job = TrainJob(
        data, backbone, detector, settings, out, seed, device, data_args.format, train_split=data_args.split,
        options=data_args.read, on_bad_box=data_args.on_bad_box, distill=distill, transfer=transfer,
        class_map=class_map, split_seed=data_args.split_seed,
    )  # fmt: skip
    with progress_bar(disable=not main) as bar:
        final = train_trials(job, trials, resume, _trial_progress(bar, trials), main)
    if not main:
        return
    if as_json:
        print(json.dumps({k: v for k, v in final.items() if k != "per_class"}))
        return
    title = f"{detector} on {backbone} ({settings.name}, {trials} trial{'s' if trials > 1 else ''})"
    _show(final, out if trials == 1 else out / "trial-0", title)
    out_console.print(f"run in {out}")


@data_options
def eval_(
    data: Annotated[Path, typer.Option("--data", help="Detection dataset to evaluate on.")],
    checkpoint: RunOption,
    device: DeviceOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as one JSON object.")] = False,
    plugin: PluginOption = [],  # noqa: B006 - typer reads the default
    data_args: DataArgs = AS_READ,
) -> None:
    """Evaluate a trained run on a dataset: COCO AP/AR, VOC07 AP50 and per-class AP."""
    use_plugins(plugin)
    from transferdet.data.split import held_out_split
    from transferdet.evaluate.predict import evaluate_records
    from transferdet.run_detector import load_detector
    from transferdet.runs import RunDir

    device = default_device(device)
    model, classes = load_detector(RunDir(checkpoint), device)
    dataset = data_args.load(data)
    if dataset.classes != classes:
        raise TransferdetError(f"{data}: classes {dataset.classes} differ from the run's {classes}")
    split = held_out_split(dataset, data_args.split) or next(iter(dataset.splits))
    metrics = {**evaluate_records(model, dataset.records(split), classes, device), "split": split}
    if as_json:
        print(json.dumps(metrics))
        return
    table = Table(title=f"{checkpoint} on {data} ({split})")
    table.add_column("class")
    table.add_column("AP", justify="right")
    for name, value in metrics["per_class"].items():
        table.add_row(name, "n/a" if value is None else f"{value:.3f}")
    out_console.print(table)
    from transferdet.train.trials import SUMMARY_KEYS

    shown = (*SUMMARY_KEYS, "VOC07_AP50")
    out_console.print(", ".join(f"{k} {metrics[k]:.3f}" for k in shown if metrics.get(k) is not None))


def predict(
    checkpoint: RunOption,
    images: Annotated[list[Path], typer.Argument(help="Image files or folders of images.")],
    out: Annotated[Path, typer.Option(help="Folder for the drawn predictions and predictions.json.")],
    score_threshold: Annotated[float, typer.Option(help="Draw and keep detections scoring at least this.")] = 0.5,
    device: DeviceOption = None,
    plugin: PluginOption = [],  # noqa: B006 - typer reads the default
) -> None:
    """Run a trained detector on images; write PNGs with the predictions drawn, and their JSON."""
    use_plugins(plugin)
    from transferdet.evaluate.predict import image_files, predict_images
    from transferdet.run_detector import load_detector
    from transferdet.runs import RunDir

    device = default_device(device)
    files = image_files(images)
    model, classes = load_detector(RunDir(checkpoint), device)
    with progress_bar() as bar:
        task = bar.add_task("predict", total=len(files))
        predict_images(model, classes, files, out, score_threshold, device, lambda n: bar.update(task, completed=n))
    out_console.print(f"wrote {len(files)} picture(s) and predictions.json to {out}")
