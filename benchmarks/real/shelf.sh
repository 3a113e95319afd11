#!/usr/bin/env bash
# Continue the shelf sweep (resumable: run it again after any stop). It runs from its own worktree
# and venv (built from the lock) at the sweep's fixed commit, SHELF_COMMIT, so that editing this
# checkout never changes the running code, and writes into this checkout's store
# benchmarks/real/shelf/results.sqlite (job identities are path-free, so the store's jobs are found
# from the worktree). Every job records the commit that ran it; the store keeps its pip freeze.
#   bash benchmarks/real/shelf.sh                      # every job: sources, fine-tunes, ranking
#   KINDS=rank bash benchmarks/real/shelf.sh           # only the ranking jobs
# One pass over every kind, so that each shelf source is trained right before all the jobs that use
# it, its ranking jobs included (bench/schedule.py): source folders are not committed, and a session
# that ends leaves few of them for a later one to train again (4-11 minutes each, by CPU).
#   bash benchmarks/real/snapshot.sh shelf             # stage a consistent copy of the store for a commit
set -euo pipefail
root=$(git rev-parse --show-toplevel)
commit=$(cat "$root/benchmarks/real/SHELF_COMMIT")
tree=${SHELF_TREE:-$root/../transferdet-shelf}  # a sibling of this checkout: ../shared resolves the same
[ -d "$tree" ] || git -C "$root" worktree add --detach "$tree" "$commit"
[ "$(git -C "$tree" rev-parse HEAD)" = "$commit" ] || { echo "$tree is not at $commit" >&2; exit 2; }
if [ ! -x "$tree/.venv/bin/transferdet" ]; then
  (cd "$tree" && python3 -m venv .venv && .venv/bin/pip install -q -c constraints.txt -e .)
fi
cd "$tree"
# The sweep's commit records the host name only; a seeded run agrees bit for bit only on a like CPU,
# so each start notes the machine (CPU model, vector extensions) in the store: meta 'machine <UTC time>'
store=$root/benchmarks/real/shelf/results.sqlite
here=$(PYTHONPATH="$root/src" .venv/bin/python -c "import json; from transferdet.provenance import machine; print(json.dumps(machine()))")
sqlite3 "$store" "INSERT OR REPLACE INTO meta VALUES ('machine $(date -u +%Y-%m-%dT%H:%M:%SZ)', '$here')"
.venv/bin/transferdet bench benchmarks/real/shelf.yaml --out "$root/benchmarks/real/shelf" --device cpu \
  --kinds "${KINDS:-source,train,rank}"
