#!/usr/bin/env bash
# Stop the running shelf sweep as it starts training its next shelf source, so that no source's jobs
# are split between two sessions: a later session (a fresh checkout, perhaps another CPU) would train
# that source again, and another CPU gives another checkpoint (README.md, "Machines").
#   bash benchmarks/real/stop_at_source.sh                 # wait for the next source, then stop
#   bash benchmarks/real/stop_at_source.sh mnv2-bccd       # let these sources (comma-separated) train
#   SWEEP=whole bash benchmarks/real/stop_at_source.sh     # the whole-transfer sweep (whole.sh) instead
# It removes the stopped source's barely started run folder, and never the store's WAL file (which
# holds committed jobs until SQLite's next checkpoint).
set -euo pipefail
root=$(git rev-parse --show-toplevel)
case ${SWEEP:-shelf} in
  shelf) store=$root/benchmarks/real/shelf/results.sqlite; tree=${SHELF_TREE:-$root/../transferdet-shelf}
         config=shelf.yaml; script=shelf.sh ;;
  whole) store=$root/benchmarks/real/whole/results.sqlite; tree=${WHOLE_TREE:-$root/../transferdet-whole}
         config=shelf_whole.yaml; script=whole.sh ;;
  *) echo "SWEEP: shelf or whole" >&2; exit 2 ;;
esac
allowed=",${1:-},"
since=$(date +%s)
sweep="transferdet bench benchmarks/real/$config"
while pgrep -f "$sweep" > /dev/null; do
  model=$(sqlite3 "$store" "SELECT model FROM jobs WHERE kind='source' AND status='running' AND started > $since")
  if [ -n "$model" ] && [[ "$allowed" != *",$model,"* ]]; then
    pkill -f "bash benchmarks/real/$script" || true
    pkill -f "$sweep" || true
    while pgrep -f "$sweep" > /dev/null; do sleep 1; done
    rm -rf "$tree/benchmarks/real/sources/$model"
    echo "stopped the sweep as it started training $model (its folder removed; a later start trains it)"
    exit 0
  fi
  sleep 5
done
echo "the sweep is not running"
