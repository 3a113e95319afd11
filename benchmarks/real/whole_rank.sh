#!/usr/bin/env bash
# The ranking half of the whole-transfer measurement (question 2, README.md), one shelf dataset's
# sources at a time: shelf_whole_rank.yaml's rank jobs of the intermediate sources trained on the
# datasets named (and, once, the ImageNet and random rows), from their own worktree and venv at
# RANK_COMMIT (a commit with the detector's own taps), into the same store. They rank the run folders
# the whole sweep trained (its worktree's sources folder, linked), so run it right after the sweep
# finished a dataset's three sources, alone on the cores: a source's folder lives only on the machine
# that trained it. The job identities are the full config's, so the store sees one set of 144 jobs.
#   bash benchmarks/real/whole_rank.sh hardhat             # mnv2-, lite0- and lite2-hardhat
#   ALLOW_RETRAIN=1 bash benchmarks/real/whole_rank.sh bccd  # sources lost with their machine: trained again
#                                                            # at RANK_COMMIT (another realisation; README says)
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: whole_rank.sh DATASET[,DATASET...]" >&2; exit 2; }
root=$(git rev-parse --show-toplevel)
commit=$(cat "$root/benchmarks/real/RANK_COMMIT")
tree=${RANK_TREE:-$root/../transferdet-whole-rank}
sources=${WHOLE_TREE:-$root/../transferdet-whole}/benchmarks/real/sources
[ -d "$tree" ] || git -C "$root" worktree add --detach "$tree" "$commit"
[ "$(git -C "$tree" rev-parse HEAD)" = "$commit" ] || { echo "$tree is not at $commit" >&2; exit 2; }
if [ ! -x "$tree/.venv/bin/transferdet" ]; then
  (cd "$tree" && python3 -m venv .venv && .venv/bin/pip install -q -c constraints.txt -e .)
fi
for dataset in ${1//,/ }; do
  for arch in mnv2 lite0 lite2; do
    if [ ! -d "$sources/$arch-$dataset" ] && [ -z "${ALLOW_RETRAIN:-}" ]; then
      echo "$sources/$arch-$dataset is not on this machine: rank it where the sweep trained it, or" \
        "ALLOW_RETRAIN=1 to train it again at RANK_COMMIT" >&2
      exit 2
    fi
  done
done
mkdir -p "$sources"
[ -L "$tree/benchmarks/real/sources" ] || ln -s "$sources" "$tree/benchmarks/real/sources"
name=whole_rank_${1//,/_}.yaml  # beside shelf_whole_rank.yaml: its relative paths and `extends` hold
pattern='^  datasets: \[bccd, chess_pieces, hardhat, pothole, thermal_dogs\]$'
grep -q "$pattern" "$tree/benchmarks/real/shelf_whole_rank.yaml"
sed "s/$pattern/  datasets: [${1//,/, }]/" "$tree/benchmarks/real/shelf_whole_rank.yaml" > "$tree/benchmarks/real/$name"
cd "$tree"
.venv/bin/transferdet bench "benchmarks/real/$name" --out "$root/benchmarks/real/whole" --device cpu --kinds rank
