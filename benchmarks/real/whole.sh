#!/usr/bin/env bash
# Continue the whole-transfer sweep of the shelf (issue 43; resumable: run it again after any stop).
# It runs from its own worktree and venv (built from the lock) at the sweep's fixed commit,
# WHOLE_COMMIT, so that editing this checkout never changes the running code, and writes into this
# checkout's store benchmarks/real/whole/results.sqlite, which starts as a copy of the shelf's
# (job identities are path-free: the shelf's body-only and ImageNet fine-tunes are found done).
# Never beside other CPU work: the two cores are the sweep's. The shelf sources (run folders, not
# committed) are trained again where missing, each right before the jobs that need it.
#   bash benchmarks/real/whole.sh
#   bash benchmarks/real/snapshot.sh whole && git commit -m "whole store so far"
set -euo pipefail
root=$(git rev-parse --show-toplevel)
commit=$(cat "$root/benchmarks/real/WHOLE_COMMIT")
tree=${WHOLE_TREE:-$root/../transferdet-whole}  # a sibling of this checkout: ../shared resolves the same
[ -d "$tree" ] || git -C "$root" worktree add --detach "$tree" "$commit"
[ "$(git -C "$tree" rev-parse HEAD)" = "$commit" ] || { echo "$tree is not at $commit" >&2; exit 2; }
if [ ! -x "$tree/.venv/bin/transferdet" ]; then
  (cd "$tree" && python3 -m venv .venv && .venv/bin/pip install -q -c constraints.txt -e .)
fi
store=$root/benchmarks/real/whole/results.sqlite
if [ ! -f "$store" ]; then
  mkdir -p "$(dirname "$store")"
  sqlite3 "$root/benchmarks/real/shelf/results.sqlite" ".backup '$store'"
fi
cd "$tree"
here=$(PYTHONPATH="$root/src" .venv/bin/python -c "import json; from transferdet.provenance import machine; print(json.dumps(machine()))")
sqlite3 "$store" "INSERT OR REPLACE INTO meta VALUES ('machine $(date -u +%Y-%m-%dT%H:%M:%SZ)', '$here')"
.venv/bin/transferdet bench benchmarks/real/shelf_whole.yaml --out "$root/benchmarks/real/whole" --device cpu \
  --kinds "${KINDS:-source,train}"
