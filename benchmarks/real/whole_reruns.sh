#!/usr/bin/env bash
# The pre-registered caveat's measurement (README.md, "Pre-registered", issue 43): 8 body-only shelf
# fine-tunes (one per target x 2 architectures, first trial) run again from this sweep's realisation
# of their source, outside the store, at WHOLE_COMMIT from the sweep's worktree and venv; each writes
# whole/reproduce-MODEL-DATASET-0.json (the stored and the new AP50 and AP, reproduce.py).
# A source's run folder must be on this machine: the sweep's worktree keeps those it trained, until
# the machine changes. So run it right after the sweep trained them, alone on the cores; a key whose
# folder is missing is skipped, saying so, and a key already measured is not run again.
#   bash benchmarks/real/whole_reruns.sh
set -euo pipefail
root=$(git rev-parse --show-toplevel)
tree=${WHOLE_TREE:-$root/../transferdet-whole}
keys="bccd:mnv2-hardhat chess_pieces:mnv2-hardhat bccd:lite0-hardhat chess_pieces:lite0-hardhat
      pothole:lite0-hardhat pothole:lite2-chess_pieces hardhat:lite2-chess_pieces hardhat:mnv2-pothole"
cd "$tree"
for key in $keys; do
  dataset=${key%%:*} model=${key#*:}
  out=$root/benchmarks/real/whole/reproduce-$model-$dataset-0.json
  if [ -f "$out" ]; then continue; fi
  if [ ! -d "benchmarks/real/sources/$model" ]; then
    echo "skipped $key: $tree/benchmarks/real/sources/$model is not on this machine (the sweep trains it again)"
    continue
  fi
  .venv/bin/python benchmarks/real/reproduce.py "$root/benchmarks/real/whole" "$dataset:$model:0"
done
