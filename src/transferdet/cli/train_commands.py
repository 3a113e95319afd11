"""``transferdet train`` and ``transferdet eval``: fine-tune with a named recipe, evaluate a run."""

from __future__ import annotations

import io
import json
import os
import statistics
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from transferdet.cli.common import (
    AnnotationsOption,
    ClassNameOption,
    CsvColumnsOption,
    FormatOption,
    ImagesOption,
    InputFormat,
    default_device,
    err_console,
    out_console,
    progress_bar,
    read_options,
)
from transferdet.errors import TransferdetError

SUMMARY_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl")


def _mean_std(values: list[float | None]) -> tuple[float | None, float | None]:
    present = [v for v in values if v is not None]
    if not present:
        return None, None
    return statistics.fmean(present), (statistics.stdev(present) if len(present) > 1 else 0.0)


def train(
    data: Annotated[Path, typer.Option("--data", help="Detection dataset (folder or annotation file).")],
    backbone: Annotated[str, typer.Option(help="Backbone spec ARCH[@WEIGHTS].")],
    detector: Annotated[
        str, typer.Option(help="faster_rcnn_fpn, faster_rcnn_c4, mask_rcnn_fpn, retinanet, fcos or ssd.")
    ],
    out: Annotated[Path, typer.Option(help="Output folder of the run.")],
    recipe: Annotated[
        str,
        typer.Option(
            help="quick, voc_c4_24k, coco_fpn_1x, coco_fpn_2x, tmod_frozen, tmod_two_step, retinanet_1x_adamw."
        ),
    ] = "quick",
    set_: Annotated[list[str], typer.Option("--set", help="Override a recipe key: key=value (repeat).")] = [],  # noqa: B006
    config: Annotated[Path | None, typer.Option(help="YAML file of recipe keys to override.")] = None,
    trials: Annotated[int, typer.Option(help="Number of seeded trials (seeds S, S+1, ...).")] = 1,
    seed: Annotated[int, typer.Option(help="Seed of data order, augmentation and initialisation.")] = 0,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:1 ... (default: cuda if available).")] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run(s) in --out from their checkpoints.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the final metrics as one JSON object.")] = False,
    distill_from: Annotated[
        Path | None,
        typer.Option(
            help="Distil a classification teacher (a `transferdet distill teacher` folder) into the detector."
        ),
    ] = None,
    distill_cls_weight: Annotated[
        float, typer.Option(help="Weight of the classification distillation term (KL on positives).")
    ] = 0.4,
    distill_loc_weight: Annotated[
        float, typer.Option(help="Weight of the localization distillation term (L1 of crops).")
    ] = 0.15,
    distill_temperature: Annotated[float, typer.Option(help="Softmax temperature of the distillation.")] = 2.0,
    format: FormatOption = InputFormat.auto,
    images: ImagesOption = None,
    annotations: AnnotationsOption = None,
    csv_columns: CsvColumnsOption = None,
    class_name: ClassNameOption = "object",
) -> None:
    """Fine-tune a detector on a backbone with a named recipe; evaluate with COCO metrics."""

    from transferdet.atomic import atomic_write_bytes
    from transferdet.data.formats.base import load_yaml
    from transferdet.train.distiller import DistillSettings
    from transferdet.train.engine import TrainJob
    from transferdet.train.engine import train as run_training
    from transferdet.train.recipes import load_recipe

    if trials < 1:
        raise TransferdetError("--trials must be at least 1")
    main = int(os.environ.get("RANK", "0")) == 0  # under torchrun only rank 0 reports
    overrides = load_yaml(config) if config else None
    if overrides is not None and not isinstance(overrides, dict):
        raise TransferdetError(f"{config}: expected a mapping of recipe keys")
    settings = load_recipe(recipe, set_, overrides)
    if not as_json:
        err_console.print(
            f"recipe [bold]{settings.name}[/bold]: {settings.description or 'custom'}; {settings.frozen_parts()}"
        )
        err_console.print(settings.model_dump_json(exclude_none=True))
    device = default_device(device)
    options = read_options(images, annotations, csv_columns, class_name)
    distill = (
        None
        if distill_from is None
        else DistillSettings(distill_from, distill_cls_weight, distill_loc_weight, distill_temperature)
    )
    results = []
    for trial in range(trials):
        folder = out if trials == 1 else out / f"trial-{trial}"
        job = TrainJob(
            data,
            backbone,
            detector,
            settings,
            folder,
            seed + trial,
            device,
            format.value,
            options=options,
            distill=distill,
        )
        with progress_bar(disable=not main) as bar:
            task = bar.add_task(f"train {'' if trials == 1 else f'trial {trial} '}loss ?", total=None)

            def show(iteration: int, total: int, scalars: dict[str, float], task: int = task) -> None:
                description = f"train loss {scalars['loss']:.3f} lr {scalars['lr']:.2e}"
                bar.update(task, completed=iteration, total=total, description=description)

            results.append(run_training(job, resume=resume, on_iteration=show))
    if not main:
        return
    if trials > 1:
        summary = {}
        for key in SUMMARY_KEYS:
            summary[key], summary[f"{key}_std"] = _mean_std([r.get(key) for r in results])
        atomic_write_bytes(
            out / "trials.json",
            json.dumps({"seeds": [seed + t for t in range(trials)], "trials": results}, indent=1).encode(),
        )
        atomic_write_bytes(out / "metrics.json", json.dumps(summary, indent=1).encode())
        final = summary
    else:
        final = results[0]
    if as_json:
        print(json.dumps({k: v for k, v in final.items() if k != "per_class"}))
        return
    table = Table(title=f"{detector} on {backbone} ({settings.name}, {trials} trial{'s' if trials > 1 else ''})")
    for key in SUMMARY_KEYS:
        table.add_column(key, justify="right")
    cells = []
    for key in SUMMARY_KEYS:
        value = final.get(key)
        spread = final.get(f"{key}_std")
        cells.append(
            "n/a" if value is None else (f"{value:.3f} ± {spread:.3f}" if spread is not None else f"{value:.3f}")
        )
    table.add_row(*cells)
    out_console.print(table)
    out_console.print(f"run in {out}")


def eval_(
    data: Annotated[Path, typer.Option("--data", help="Detection dataset to evaluate on.")],
    checkpoint: Annotated[Path, typer.Option(help="Training run folder (holds recipe.json and checkpoint.pt).")],
    split: Annotated[str | None, typer.Option(help="Split to evaluate (default: test, val or valid).")] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda ... (default: cuda if available).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as one JSON object.")] = False,
    format: FormatOption = InputFormat.auto,
    images: ImagesOption = None,
    annotations: AnnotationsOption = None,
    csv_columns: CsvColumnsOption = None,
    class_name: ClassNameOption = "object",
) -> None:
    """Evaluate a trained run on a dataset: COCO AP/AR, VOC07 AP50 and per-class AP."""

    from transferdet.data.loader import load_dataset
    from transferdet.evaluate.coco_metrics import coco_evaluate
    from transferdet.evaluate.voc_ap import voc_evaluate
    from transferdet.train.engine import TEST_SPLITS, load_trained, predict

    device = default_device(device)
    model, classes = load_trained(checkpoint, device)
    dataset = load_dataset(data, format.value, read_options(images, annotations, csv_columns, class_name))
    if dataset.classes != classes:
        raise TransferdetError(f"{data}: classes {dataset.classes} differ from the run's {classes}")
    split = split or next((s for s in TEST_SPLITS if s in dataset.splits), next(iter(dataset.splits)))
    records = dataset.records(split)
    predictions = predict(model, records, device)
    metrics = coco_evaluate(records, classes, predictions)
    metrics["VOC07_AP50"] = voc_evaluate(records, classes, predictions)["AP50"]
    metrics["split"] = split
    if as_json:
        print(json.dumps(metrics))
        return
    table = Table(title=f"{checkpoint} on {data} ({split})")
    table.add_column("class")
    table.add_column("AP", justify="right")
    for name, value in metrics["per_class"].items():
        table.add_row(name, "n/a" if value is None else f"{value:.3f}")
    out_console.print(table)
    summary = ", ".join(f"{k} {metrics[k]:.3f}" for k in (*SUMMARY_KEYS, "VOC07_AP50") if metrics.get(k) is not None)
    out_console.print(summary)


def predict(
    checkpoint: Annotated[Path, typer.Option(help="Training run folder (holds recipe.json and checkpoint.pt).")],
    images: Annotated[list[Path], typer.Argument(help="Image files or folders of images.")],
    out: Annotated[Path, typer.Option(help="Folder for the drawn predictions and predictions.json.")],
    score_threshold: Annotated[float, typer.Option(help="Draw and keep detections scoring at least this.")] = 0.5,
    device: Annotated[str | None, typer.Option(help="cpu, cuda ... (default: cuda if available).")] = None,
) -> None:
    """Run a trained detector on images; write PNGs with the predictions drawn, and their JSON."""
    import torch
    from PIL import Image, UnidentifiedImageError
    from torchvision.transforms.v2 import functional as F
    from torchvision.utils import draw_bounding_boxes

    from transferdet.atomic import atomic_write_bytes
    from transferdet.data.images import is_image_file
    from transferdet.data.show import class_colors
    from transferdet.train.engine import load_trained

    device = default_device(device)
    files = []
    for path in images:
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if is_image_file(p))
        elif path.is_file():
            files.append(path)
        else:
            raise TransferdetError(f"{path}: no such image or folder")
    if not files:
        raise TransferdetError("no images to predict on")
    model, classes = load_trained(checkpoint, device)
    colors = class_colors(len(classes))
    out.mkdir(parents=True, exist_ok=True)
    results = []
    with progress_bar() as bar, torch.no_grad():
        task = bar.add_task("predict", total=len(files))
        for path in files:
            try:
                with Image.open(path) as image:
                    pixels = F.pil_to_tensor(image.convert("RGB"))
            except (UnidentifiedImageError, OSError):
                raise TransferdetError(f"{path}: not a readable image") from None
            output = model([F.to_dtype(pixels, torch.float32, scale=True).to(device)])[0]
            keep = output["scores"] >= score_threshold
            boxes, scores = output["boxes"][keep].cpu(), output["scores"][keep].cpu()
            labels = (output["labels"][keep] - model.label_offset).cpu()
            names = [f"{classes[int(label)]} {float(score):.2f}" for label, score in zip(labels, scores, strict=True)]
            drawn = draw_bounding_boxes(
                pixels, boxes, labels=names, colors=[colors[int(label)] for label in labels], width=2
            )
            buffer = io.BytesIO()
            F.to_pil_image(drawn).save(buffer, format="PNG")
            atomic_write_bytes(out / f"{path.stem}.png", buffer.getvalue())
            results.append(
                {
                    "image": str(path),
                    "boxes": boxes.tolist(),
                    "scores": scores.tolist(),
                    "labels": [classes[int(label)] for label in labels],
                }
            )
            bar.advance(task)
    atomic_write_bytes(out / "predictions.json", json.dumps(results, indent=1).encode())
    out_console.print(f"wrote {len(files)} picture(s) and predictions.json to {out}")
