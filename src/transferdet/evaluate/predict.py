"""Running a trained detector: its detections on dataset records (for COCO/VOC evaluation) and
on image files (drawn into PNGs, with their JSON)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from transferdet.atomic import atomic_write_bytes
from transferdet.data.dataset import ImageRecord
from transferdet.data.transforms import TorchDetectionDataset, detection_transforms
from transferdet.errors import TransferdetError
from transferdet.evaluate.coco_metrics import Prediction, coco_evaluate
from transferdet.evaluate.voc_ap import voc_evaluate


@torch.no_grad()
def predict(model: torch.nn.Module, records: list[ImageRecord], device: str, batch_size: int = 4) -> list[Prediction]:
    """The model's detections on ``records``, in their pixels and the dataset's label ids."""
    model.eval()
    data = TorchDetectionDataset(records, detection_transforms(train=False))
    out = []
    for start in range(0, len(records), batch_size):
        images = [data[i][0].to(device) for i in range(start, min(start + batch_size, len(records)))]
        for result in model(images):
            out.append(
                Prediction(
                    result["boxes"].double().cpu().numpy(),
                    result["scores"].double().cpu().numpy(),
                    result["labels"].cpu().numpy() - model.label_offset,
                )
            )
    return out


def evaluate_records(
    model: torch.nn.Module, records: list[ImageRecord], classes: list[str], device: str
) -> dict[str, Any]:
    """COCO AP/AR, per-class AP and VOC07 AP50 of the model on ``records``."""
    predictions = predict(model, records, device)
    metrics = coco_evaluate(records, classes, predictions)
    metrics["VOC07_AP50"] = voc_evaluate(records, classes, predictions)["AP50"]
    return metrics


def image_files(paths: list[Path]) -> list[Path]:
    """The image files among ``paths``, folders expanded (sorted); a missing path is an error."""
    from transferdet.data.images import is_image_file

    files = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if is_image_file(p))
        elif path.is_file():
            files.append(path)
        else:
            raise TransferdetError(f"{path}: no such image or folder")
    if not files:
        raise TransferdetError("no images to predict on")
    return files


def _read_pixels(path: Path) -> torch.Tensor:
    from PIL import Image, UnidentifiedImageError
    from torchvision.transforms.v2 import functional as F

    try:
        with Image.open(path) as image:
            return F.pil_to_tensor(image.convert("RGB"))
    except (UnidentifiedImageError, OSError):
        raise TransferdetError(f"{path}: not a readable image") from None


@torch.no_grad()
def predict_images(
    model: torch.nn.Module,
    classes: list[str],
    files: list[Path],
    out: Path,
    score_threshold: float = 0.5,
    device: str = "cpu",
    progress: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    """Draw the model's detections scoring at least ``score_threshold`` on each image into
    ``out/NAME.png`` and list them all in ``out/predictions.json``; returns that list."""
    from torchvision.transforms.v2 import functional as F
    from torchvision.utils import draw_bounding_boxes

    from transferdet.data.show import class_colors

    colors = class_colors(len(classes))
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for done, path in enumerate(files, start=1):
        pixels = _read_pixels(path)
        output = model.eval()([F.to_dtype(pixels, torch.float32, scale=True).to(device)])[0]
        keep = output["scores"] >= score_threshold
        boxes, scores = output["boxes"][keep].cpu(), output["scores"][keep].cpu()
        labels = [int(label) for label in (output["labels"][keep] - model.label_offset).cpu()]
        names = [f"{classes[label]} {float(score):.2f}" for label, score in zip(labels, scores, strict=True)]
        drawn = draw_bounding_boxes(pixels, boxes, labels=names, colors=[colors[label] for label in labels], width=2)
        buffer = io.BytesIO()
        F.to_pil_image(drawn).save(buffer, format="PNG")
        atomic_write_bytes(out / f"{path.stem}.png", buffer.getvalue())
        results.append(
            {
                "image": str(path),
                "boxes": boxes.tolist(),
                "scores": scores.tolist(),
                "labels": [classes[label] for label in labels],
            }
        )
        if progress is not None:
            progress(done)
    atomic_write_bytes(out / "predictions.json", json.dumps(results, indent=1).encode())
    return results
