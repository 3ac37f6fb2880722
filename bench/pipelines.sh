#!/usr/bin/env bash
# Pipelines' scheduler: a DAG of N trivial steps (`true`) in a wide shape (one root, every other
# step its child) and a deep one (levels of J steps, each depending on all of the level
# before), run by berth (each step a task: cgroup, shim, logs, two store writes) and by
# `make -jJ` in the same run. Prints steps/s against make's (target >= 0.8x) and berth's
# overhead per step, then the latency from POST to a run's first step running (target p50
# < 20 ms).
#   bench/pipelines.sh [N] [J]   (default 10000 steps, J = number of cores)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
n=${1:-10000}
jobs=${2:-$(nproc)}
berth=$PWD/build/src/berth/berth
[[ -x $berth ]] || { echo "build first: scripts/build" >&2; exit 1; }
bench_scratch
mkdir -p "$dir/work"
bench_start_daemon "$dir"
echo "pipelines: $n steps, $jobs at a time, on $(nproc) cores"
/usr/bin/python3 bench/tools/pipeline_bench.py "$BENCH_URL" "$BENCH_TOKEN" "$dir/work" "$n" "$jobs"
