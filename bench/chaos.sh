#!/usr/bin/env bash
# Chaos, bounded: kill -9 of the daemon at random moments while writers create, push, define
# and delete services and pipeline runs go on (counts acknowledged and lost writes, spurious
# restarts, unfinished runs, orphans, leftovers), then rolling updates under load to a good
# revision and to three bad ones (exits at once, never healthy, crashes after going live),
# counting failed requests. Targets: 0 lost, 0 spurious restarts, 0 orphans, 0 failed
# requests for the good update, every bad revision rolled back with the old one serving.
#   bench/chaos.sh [KILLS]   (default 20)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
kills=${1:-20}
berth=$PWD/build/src/berth/berth
[[ -x $berth ]] || { echo "build first: scripts/build" >&2; exit 1; }
dir=$(mktemp -d)
# The daemon is restarted by the tool: find the last one through its daemon.json.
chaos_stop() {
  if [[ -f $dir/data/daemon.json ]]; then
    /usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pid"])' \
      "$dir/data/daemon.json" >"$dir/berth.pid"
    BENCH_URL=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["url"])' \
      "$dir/data/daemon.json")
    BENCH_TOKEN=$(cat "$dir/data/admin.token")
    bench_stop "$dir"
  fi
  rm -rf "$dir"
}
trap chaos_stop EXIT
echo "chaos: $kills kills of the daemon, then four rolling updates, on $(nproc) cores"
/usr/bin/python3 bench/tools/chaos_bench.py "$berth" "$dir" "$kills"
