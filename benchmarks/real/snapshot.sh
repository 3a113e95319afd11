#!/usr/bin/env bash
# Stage a consistent copy of a running benchmark's store for a commit (SQLite's online backup:
# never a file caught mid-transaction), without stopping the bench.
#   bash benchmarks/real/snapshot.sh          # out/results.sqlite (bench.yaml)
#   bash benchmarks/real/snapshot.sh shelf    # shelf/results.sqlite (shelf.yaml)
set -euo pipefail
store=benchmarks/real/${1:-out}/results.sqlite
snapshot=$(mktemp)
sqlite3 "$store" ".backup '$snapshot'"
[ "$(sqlite3 "$snapshot" 'PRAGMA integrity_check')" = ok ]
blob=$(git hash-object -w "$snapshot")
git update-index --add --cacheinfo "100644,$blob,$store"
rm -f "$snapshot"
sqlite3 "$store" "SELECT kind, status, COALESCE(code, 'unrecorded'), COUNT(*) FROM jobs GROUP BY kind, status, code"
