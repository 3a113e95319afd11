#!/usr/bin/env bash
# select's validation races (issue 29), resumable: run it again after any stop. Only once the shelf
# sweep is done: never on its 2 cores at the same time (contention distorts both).
#   bash benchmarks/real/select.sh curve   # select_curve.yaml: 2 targets x budgets 0.15/0.3/0.5 x 2 seeds
#   bash benchmarks/real/select.sh shelf   # select_shelf.yaml: 5 targets x budget 0.3 x 2 seeds
#   bash benchmarks/real/select.sh shelf_tolerant   # issue 41's live races (select_*_tolerant.yaml), at
#   bash benchmarks/real/select.sh curve_tolerant   # TOLERANT_COMMIT in their own worktree
# The races run from their own worktree and venv at SELECT_COMMIT (so that editing this checkout never
# changes the running code) and write into this checkout's store benchmarks/real/select-<which>. Their
# sources are the shelf's, trained by the shelf sweep in its worktree (a link to its sources folder;
# a missing one is trained again). The report is rebuilt here against this checkout's reference store.
set -euo pipefail
which=${1:?say curve, shelf, curve_tolerant or shelf_tolerant}
if pgrep -f "transferdet bench benchmarks/real/shelf(_whole)?.yaml" > /dev/null; then
  echo "a shelf sweep is running: races must not share its cores (wait for it, or stop it first)" >&2; exit 2
fi
root=$(git rev-parse --show-toplevel)
case $which in
  *_tolerant) commit=$(cat "$root/benchmarks/real/TOLERANT_COMMIT"); tree=${SELECT_TREE:-$root/../transferdet-tolerant} ;;
  *) commit=$(cat "$root/benchmarks/real/SELECT_COMMIT"); tree=${SELECT_TREE:-$root/../transferdet-select} ;;
esac
shelf_tree=${SHELF_TREE:-$root/../transferdet-shelf}
[ -d "$tree" ] || git -C "$root" worktree add --detach "$tree" "$commit"
[ "$(git -C "$tree" rev-parse HEAD)" = "$commit" ] || { echo "$tree is not at $commit" >&2; exit 2; }
if [ ! -x "$tree/.venv/bin/transferdet" ]; then
  (cd "$tree" && python3 -m venv .venv && .venv/bin/pip install -q -c constraints.txt -e .)
fi
[ -e "$tree/benchmarks/real/sources" ] || ln -s "$shelf_tree/benchmarks/real/sources" "$tree/benchmarks/real/sources"
out=$root/benchmarks/real/select-$which
reference=$root/benchmarks/real/$([ "${which%_tolerant}" = shelf ] && echo shelf || echo out)
(cd "$tree" && .venv/bin/transferdet bench "benchmarks/real/select_$which.yaml" --out "$out" --device cpu) || true
"$root/.venv/bin/transferdet" report "$out" --reference "$reference"
