#!/usr/bin/env bash
# Classifier-to-detector distillation into a Faster R-CNN student (softmax with a background
# column) on synthetic digits (issue 7): MobileNetV3-Small 0.5x from random init, the quick recipe
# with 64 sampled RoIs per image, with and without a ResNet-18 crop teacher trained on 2,000 other
# digit images; seeds 0-2, two runs at a time on one thread each (about 40 min on 2 cores).
# Usage: benchmarks/distill_frcnn.sh [WORKDIR]
set -euo pipefail
work=${1:-/tmp/distill-synthetic}
mkdir -p "$work" && cd "$work"
export OMP_NUM_THREADS=1
[ -d digits400 ] || transferdet data synth digits400 --source digits --images 400 --size 128 --seed 0
[ -d digits2000 ] || transferdet data synth digits2000 --source digits --images 2000 --size 128 --seed 1
[ -f teacher2000/teacher.pt ] || transferdet distill teacher --data digits2000 --arch timm:resnet18@random \
    --out teacher2000 --crop-size 64 --epochs 6 --flip 0 --device cpu
common="--data digits400 --backbone timm:mobilenetv3_small_050@random --detector faster_rcnn_fpn --recipe quick"
common="$common --set rois_per_image=64 --device cpu --json"
for seed in 0 1 2; do
  transferdet train $common --seed $seed --out fr-plain-$seed > fr-plain-$seed.log 2>&1 &
  transferdet train $common --seed $seed --out fr-dist-$seed --distill-from teacher2000 > fr-dist-$seed.log 2>&1 &
  wait
done
python3 - <<'PY'
import json, statistics
for kind in ("plain", "dist"):
    runs = [json.loads(open(f"fr-{kind}-{s}.log").read().strip().splitlines()[-1]) for s in range(3)]
    for key in ("AP", "AP50"):
        values = [r[key] for r in runs]
        print(kind, key, [round(v, 3) for v in values], round(statistics.fmean(values), 3), round(statistics.stdev(values), 3))
PY
