#!/usr/bin/env bash
# Recipe graphs: ping round trips through a 1-node and a 4-node graph, one caller and 8 at once,
# through berth (HTTP -> handler chain -> ZeroMQ graph of berth-node processes -> answer)
# and through a direct ZeroMQ pipeline of the same berth-node processes driven by the
# benchmark itself, in the same run. Prints msgs/s and p50/p99 of both and their ratio
# (target: berth >= 0.5x the direct pipeline's rate).
#   bench/recipes.sh [MESSAGES] [SECONDS]   (per round: direct 20000 messages, berth wrk for
#                                           3 s; the median of 3 rounds)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
n=${1:-20000}
seconds=${2:-3}
command -v wrk >/dev/null || { echo "wrk is missing: scripts/setup installs it" >&2; exit 1; }
berth=$PWD/build/src/berth/berth
[[ -x $berth ]] || { echo "build first: scripts/build" >&2; exit 1; }
bench_scratch
bench_start_daemon "$dir" ${BERTH_BENCH_ARGS:-}
echo "recipes: ping round trips, on $(nproc) cores"
/usr/bin/python3 bench/tools/recipe_bench.py "$BENCH_URL" "$BENCH_TOKEN" \
  "$(dirname "$berth")/berth-node" "$dir" "$n" "$seconds"
