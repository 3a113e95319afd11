#!/usr/bin/env bash
# Stage a consistent copy of the running benchmark's store for a commit (SQLite's online backup:
# never a file caught mid-transaction), without stopping the bench.
set -euo pipefail
store=benchmarks/real/out/results.sqlite
snapshot=$(mktemp)
sqlite3 "$store" ".backup '$snapshot'"
[ "$(sqlite3 "$snapshot" 'PRAGMA integrity_check')" = ok ]
blob=$(git hash-object -w "$snapshot")
git update-index --add --cacheinfo "100644,$blob,$store"
rm -f "$snapshot"
sqlite3 "$store" "SELECT kind, status, COUNT(*) FROM jobs GROUP BY kind, status"
