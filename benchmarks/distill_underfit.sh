#!/usr/bin/env bash
# Classifier-to-detector distillation where the student under-fits (issue 7): FCOS on
# MobileNetV3-Small 0.5x from random init, trained for 640 iterations of batch 8 (3.2 epochs) on
# 1,600 synthetic digit images, with and without a ResNet-18 crop teacher trained on the same
# training split (`distill teacher`, crop 64 px, 6 epochs: 0.978 on the test crops).
# Seeds 0-4, each seed's two runs side by side on one thread each (about 5 min per seed on 2 cores).
# Usage: [SEEDS="0 1 2 3 4"] benchmarks/distill_underfit.sh [WORKDIR]   (finished runs are kept, stopped ones resumed)
set -euo pipefail
work=${1:-/tmp/distill-synthetic}
mkdir -p "$work/uf" && cd "$work"
export OMP_NUM_THREADS=1
[ -d digits2000 ] || transferdet data synth digits2000 --source digits --images 2000 --size 128 --seed 1
[ -f teacher2000/teacher.pt ] || transferdet distill teacher --data digits2000 --arch timm:resnet18@random \
    --out teacher2000 --crop-size 64 --epochs 6 --flip 0 --device cpu
common="--data digits2000 --backbone timm:mobilenetv3_small_050@random --detector fcos --recipe quick"
common="$common --set iterations=640 --device cpu --json"
run() {  # OUT [OPTIONS...]: skipped when finished, resumed when stopped part way
  local out=$1; shift
  [ -f "$out/metrics.json" ] && return
  local resume=; [ -f "$out/checkpoint.pt" ] && resume=--resume
  transferdet train $common --out "$out" $resume "$@" > "$out.log" 2>&1
}
for seed in ${SEEDS:-0 1 2 3 4}; do
  run uf/plain-$seed --seed $seed &
  run uf/dist-$seed --seed $seed --distill-from teacher2000 &
  wait
done
SEEDS="${SEEDS:-0 1 2 3 4}" python3 - <<'PY'
import json, os, statistics
seeds = os.environ["SEEDS"].split()
for kind in ("plain", "dist"):
    runs = [json.load(open(f"uf/{kind}-{s}/metrics.json")) for s in seeds]
    for key in ("AP", "AP50"):
        values = [r[key] for r in runs]
        print(kind, key, [round(v, 3) for v in values], round(statistics.fmean(values), 3), round(statistics.stdev(values), 3))
PY
