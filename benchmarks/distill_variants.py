"""The seed-0 diagnosis runs of docs/results.md ("Distillation"), for the variants the CLI cannot
express: an oracle teacher (8 x one-hot of the true class), a uniform teacher, two-way targets
scaled by the student's own class mass, and a softmax over the student's class logits instead of
two-way terms. Each replaces one function for the run only (nothing here is shipped).

    OMP_NUM_THREADS=1 python benchmarks/distill_variants.py VARIANT WORKDIR OUT
        VARIANT: oracle | uniform | mass | class-softmax
        WORKDIR: the folder of benchmarks/distill_synthetic.sh (digits400, teacher, teacher2000)
    python benchmarks/distill_variants.py analyse WORKDIR RUN...
        AP50 with and without the classes, and how often the best detection on a ground-truth box
        (IoU > 0.5) has its class, on the first 80 training and test images

The other rows are plain CLI runs in WORKDIR, e.g. the classification term alone:
    OMP_NUM_THREADS=1 transferdet train --data digits400 --backbone timm:mobilenetv3_small_050@random \\
        --detector fcos --out var-A --distill-from teacher --distill-cls-weight 0.4 --distill-loc-weight 0 \\
        --device cpu --json
(localization only: --distill-cls-weight 0; cls 0.04 / 0.1; --distill-temperature 4; --distill-from
teacher2000, made by benchmarks/distill_frcnn.sh; loc 1.0 with --distill-cls-weight 0).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from transferdet.distill import distiller
from transferdet.train.engine import TrainJob, train
from transferdet.train.recipes import load_recipe


def fixed_teacher(scale: float):
    def annotate(self, images, targets):
        for target in targets:
            labels = target["labels"] - self.model.label_offset
            target[distiller.TEACHER_LOGITS] = scale * F.one_hot(labels, len(self.teacher.classes)).float()

    return annotate


def mass_scaled_two_way(student_logits, teacher_logits, temperature=2.0):
    if len(student_logits) == 0:
        return student_logits.sum() * 0.0
    q = F.softmax(teacher_logits.detach().float() / temperature, dim=1)
    scaled = student_logits.float() / temperature
    mass = torch.sigmoid(scaled).sum(dim=1, keepdim=True).detach().clamp(max=1.0)
    target = q * mass
    log_p, log_not_p = F.logsigmoid(scaled), F.logsigmoid(-scaled)
    divergence = (
        torch.xlogy(target, target) + torch.xlogy(1 - target, 1 - target) - target * log_p - (1 - target) * log_not_p
    )
    return temperature**2 * divergence.sum(dim=1).mean()


def class_softmax(student_logits, teacher_logits, temperature=2.0):
    return distiller.softmax_distillation(student_logits, teacher_logits, temperature, background_index=None)


def analyse(work: Path, runs: list[str]) -> None:
    from dataclasses import replace

    import numpy as np
    from torchvision.ops import box_iou

    from transferdet.data.loader import load_dataset
    from transferdet.evaluate.coco_metrics import Prediction, coco_evaluate
    from transferdet.evaluate.predict import predict
    from transferdet.runs import RunDir

    dataset = load_dataset(work / "digits400")
    for run in runs:
        model, classes = RunDir(work / run).load_detector()
        test = dataset.records("test")
        predictions = predict(model, test, "cpu")
        aware = coco_evaluate(test, classes, predictions)["AP50"]
        agnostic = coco_evaluate(
            [replace(r, labels=np.zeros_like(r.labels)) for r in test],
            ["object"],
            [Prediction(p.boxes, p.scores, np.zeros_like(p.labels)) for p in predictions],
        )["AP50"]
        right = {}
        for split in ("train", "test"):
            records = dataset.records(split)[:80]
            hits = total = 0
            for record, prediction in zip(records, predict(model, records, "cpu"), strict=True):
                if len(prediction.boxes) == 0:
                    continue
                iou = box_iou(torch.as_tensor(record.boxes), torch.as_tensor(prediction.boxes)).numpy()
                for box, label in enumerate(record.labels):
                    candidates = np.where(iou[box] > 0.5)[0]
                    if len(candidates):
                        best = candidates[np.argmax(prediction.scores[candidates])]
                        hits, total = hits + int(prediction.labels[best] == label), total + 1
            right[split] = round(hits / max(total, 1), 3)
        print(json.dumps({"run": run, "AP50": round(aware, 3), "AP50_classes_ignored": round(agnostic, 3), **right}))


def main() -> None:
    if sys.argv[1] == "analyse":
        analyse(Path(sys.argv[2]), sys.argv[3:])
        return
    variant, work, out = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    teacher, weights = "teacher2000", (0.4, 0.15)
    if variant in ("oracle", "uniform"):
        distiller.Distiller.annotate = fixed_teacher(8.0 if variant == "oracle" else 0.0)
        weights = (0.4, 0.0)
    elif variant == "mass":
        distiller.sigmoid_distillation = mass_scaled_two_way
        teacher = os.environ.get("TEACHER", "teacher2000")  # docs: teacher2000 and teacher
    elif variant == "class-softmax":
        distiller.sigmoid_distillation = class_softmax
    else:
        raise SystemExit(f"unknown variant {variant!r}")
    job = TrainJob(
        work / "digits400",
        "timm:mobilenetv3_small_050@random",
        "fcos",
        load_recipe("quick"),
        work / out,
        device="cpu",
        distill=distiller.DistillSettings(work / teacher, *weights, 2.0),
    )
    metrics = train(job)
    print(json.dumps({key: metrics[key] for key in ("AP", "AP50", "AR100")}))


if __name__ == "__main__":
    main()
