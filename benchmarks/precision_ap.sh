#!/usr/bin/env bash
# AP of the `quick` recipe trained in bf16 against float32, 3 trials each, on the synthetic check
# (400 digits, FCOS on a random ResNet-18) and on bccd (FCOS on ImageNet MobileNetV2); the issue on
# speed asks for this before bf16 may become the CPU default. Resumable: a finished run is skipped.
#   bash benchmarks/precision_ap.sh [OUT=/tmp/precision-ap]
set -euo pipefail
out=${1:-/tmp/precision-ap}
td=${TRANSFERDET:-.venv/bin/transferdet}
shared=$(dirname "$0")/../../shared
mkdir -p "$out"
[ -d "$out/digits400" ] || $td data synth "$out/digits400" --source digits --images 400 --size 128 --seed 0
for precision in fp32 bf16; do
  for target in digits bccd; do
    run="$out/$target-$precision"
    [ -f "$run/trials.json" ] && continue
    rm -rf "$run"
    if [ "$target" = digits ]; then
      args=(--data "$out/digits400" --backbone timm:resnet18@random)
    else
      args=(--data "$shared/datasets/bccd" --backbone "torchvision:mobilenet_v2@$shared/weights/mobilenet_v2-b0353104.pth")
    fi
    /usr/bin/time -f "$target $precision %e s" $td train "${args[@]}" --detector fcos --recipe quick \
      --trials 3 --device cpu --set precision=$precision --out "$run" --json > "$run.json"
  done
done
.venv/bin/python - "$out" <<'PY'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
for run in sorted(out.glob("*-*/trials.json")):
    print(run.parent.name, json.dumps(json.loads(run.read_text()))[:400])
PY
