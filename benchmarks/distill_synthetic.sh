#!/usr/bin/env bash
# Classifier-to-detector distillation on synthetic digits (issue 7): a small random-init student
# (MobileNetV3-Small 0.5x, FCOS, the quick recipe) with and without a ResNet-18 crop teacher,
# 3 seeded trials each. Usage: benchmarks/distill_synthetic.sh [WORKDIR]   (about 30 min on 2 cores)
set -euo pipefail
work=${1:-/tmp/distill-synthetic}
student=timm:mobilenetv3_small_050@random
mkdir -p "$work"
[ -d "$work/digits400" ] || transferdet data synth "$work/digits400" --source digits --images 400 --size 128 --seed 0
[ -f "$work/teacher/teacher.pt" ] || time transferdet distill teacher --data "$work/digits400" \
    --arch timm:resnet18@random --out "$work/teacher" --flip 0 --device cpu
time transferdet train --data "$work/digits400" --backbone $student --detector fcos --recipe quick \
    --trials 3 --out "$work/plain" --device cpu
time transferdet train --data "$work/digits400" --backbone $student --detector fcos --recipe quick \
    --trials 3 --out "$work/distilled" --distill-from "$work/teacher" --device cpu
