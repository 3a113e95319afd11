#!/usr/bin/env bash
# The detector-pretrained sources of the real benchmark: FCOS detectors fine-tuned on thermal_dogs
# (a real dataset that is not one of the benchmark's targets) from ImageNet MobileNetV2 and
# EfficientNet-Lite0, with the benchmark's own protocol (bench.yaml's recipe_overrides). Their
# backbones are then sources ARCH@sources/NAME for the four targets (the TMOD paper's setting: a
# detector pretrained elsewhere). Deterministic under the seed; --resume continues a killed run.
# Run from the repository root: bash benchmarks/real/sources.sh   (about 5 minutes on 2 cores)
set -euo pipefail
here=benchmarks/real
data=${SHARED:-../shared}/datasets/thermal_dogs
protocol=(--recipe quick --set epochs=null --set iterations=200 --set "min_size=[256]" --set max_size=256)
for pair in "mnv2:torchvision:mobilenet_v2@$here/weights/mobilenet_v2.pth" \
            "lite0:timm:efficientnet_lite0@$here/weights/efficientnet-lite0.pth"; do
  name=${pair%%:*}
  backbone=${pair#*:}
  out=$here/sources/$name-thermal
  resume=()
  [ -f "$out/checkpoint.pt" ] && [ ! -f "$out/metrics.json" ] && resume=(--resume)
  [ -f "$out/metrics.json" ] && { echo "$out: done"; continue; }
  .venv/bin/transferdet train --data "$data" --backbone "$backbone" --detector fcos --out "$out" \
    "${protocol[@]}" --seed 0 --device cpu "${resume[@]}"
done
