#!/usr/bin/env bash
# Runs every libFuzzer target of the clang sanitizer build for longer than CI does (10 s each),
# two at a time, each from its seeds and the corpus it grew before, and reports executions,
# corpus size and crashes per target (target: 0 crashes in 10 minutes each). A crash leaves
# its input as build-asan/fuzz-crashes/<target>/crash-*; replay it with `<target> <file>`.
#   bench/fuzz.sh [SECONDS] [TARGET...]   (default 600 s, every target)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
shift || true
build=$PWD/build-asan
[[ -d $build ]] || { echo "build the sanitizer tree first: scripts/test (or scripts/build build-asan ...)" >&2; exit 1; }
mapfile -t all < <(find "$build/src" -name '*_fuzz' -type f -perm -u+x | sort)
targets=()
for t in "${all[@]}"; do
  name=$(basename "$t")
  if [[ $# -eq 0 ]] || printf '%s\n' "$@" | grep -qx "$name"; then targets+=("$t"); fi
done
[[ ${#targets[@]} -gt 0 ]] || { echo "no fuzz targets found in $build (clang sanitizer build)" >&2; exit 1; }
echo "fuzz: ${#targets[@]} targets x ${seconds} s, 2 at a time ($(nproc) cores)"
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
run() {
  local t=$1 name seeds corpus crashes
  name=$(basename "$t")
  seeds=$(sed -n "s|.*${name}.*_corpus\" \"\(.*fuzz_seeds\)\".*|\1|p" "$(dirname "$t")/CTestTestfile.cmake" | head -1)
  corpus=$(dirname "$t")/${name}_corpus
  crashes=$build/fuzz-crashes/$name
  mkdir -p "$corpus" "$crashes"
  # -fork keeps going after a crash (each found once), so that the count means something.
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 "$t" -max_total_time="$seconds" -rss_limit_mb=2048 \
    -timeout=10 -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -artifact_prefix="$crashes/" \
    "$corpus" ${seeds:+"$seeds"} >"$logs/$name.log" 2>&1 || true
}
export -f run
export build seconds logs
printf '%s\n' "${targets[@]}" | xargs -P2 -I{} bash -c 'run "$@"' _ {}
printf '%-16s %14s %10s %8s %9s\n' target executions exec/s corpus crashes
for t in "${targets[@]}"; do
  name=$(basename "$t")
  log=$logs/$name.log
  execs=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#')
  [[ -n $execs ]] || execs=0
  corpus=$(find "$(dirname "$t")/${name}_corpus" -type f | wc -l)
  crashes=$(find "$build/fuzz-crashes/$name" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)
  printf '%-16s %14s %10s %8s %9s\n' "$name" "$execs" "$((execs / seconds))" "$corpus" "$crashes"
done
