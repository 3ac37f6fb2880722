#!/usr/bin/env bash
# Tasks through the runtime: N trivial tasks (/bin/true), each in its own cgroup with a shim
# and logs, against the same command run by posix_spawn + waitpid (the floor of any runner)
# and by xargs -P, all in the same run. Prints the overhead per task above the floor
# (target < 1 ms), one task at a time and two at a time. The runtime's figure is taken with
# the instance directories on $TMPDIR's filesystem (as a data dir would be) and again on tmpfs
# (/dev/shm): every task creates and later deletes a few files there, and on some filesystems
# (ext4 without a journal checks each new inode against recently deleted ones) that cost
# grows with the churn, so the two figures say how much of the overhead is the filesystem's.
#   bench/tasks.sh [N]   (default 1000)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000}
bench=$PWD/build/bench/task_bench
berth=$PWD/build/src/berth/berth
[[ -x $bench && -x $berth ]] || { echo "build first: scripts/build" >&2; exit 1; }
fs=$(df --output=fstype "${TMPDIR:-/tmp}" | tail -1)
echo "tasks: $n x /bin/true on $(nproc) cores; instance directories on ${TMPDIR:-/tmp} ($fs)"
# Each figure is the median of three rounds: this is a shared 2-core machine, and a round
# now and then runs well slower than the others.
rounds=3
for k in 1 2; do
  spawn=() runtime=() tmpfs=() xargs_s=()
  for ((r = 0; r < rounds; r++)); do
    out=$($bench "$berth" "$n" "$k" /bin/true)
    spawn+=("$(awk '/^spawn/ {print $2}' <<<"$out")")
    runtime+=("$(awk '/^runtime/ {print $2}' <<<"$out")")
    if [[ $(df --output=fstype /dev/shm 2>/dev/null | tail -1) == tmpfs ]]; then
      tmpfs+=("$(TMPDIR=/dev/shm $bench "$berth" "$n" "$k" /bin/true | awk '/^runtime/ {print $2}')")
    else
      tmpfs+=(0)
    fi
    start=$(date +%s.%N)
    seq "$n" | xargs -P"$k" -n1 sh -c 'exec /bin/true' >/dev/null
    xargs_s+=("$(echo "$(date +%s.%N) - $start" | bc -l)")
  done
  /usr/bin/python3 - "$n" "$k" "${spawn[*]}" "${runtime[*]}" "${xargs_s[*]}" "${tmpfs[*]}" <<'PY'
import statistics, sys
n, k = int(sys.argv[1]), int(sys.argv[2])
spawn, runtime, xargs, tmpfs = (statistics.median(map(float, a.split())) for a in sys.argv[3:7])
# Wall time per task as a runner sees it: k run at once, so each takes k x wall / n.
per = lambda s: s / n * k * 1000
over = per(runtime) - per(spawn)
print(f"  {k} at a time: posix_spawn+waitpid {per(spawn):.3f} ms/task, xargs -P{k} (sh -c) "
      f"{per(xargs):.3f} ms/task, berth runtime {per(runtime):.3f} ms/task")
print(f"    overhead above the floor: {over:.3f} ms/task (target < 1 ms: "
      f"{'meets' if over < 1 else 'MISSES'}); {runtime / xargs:.2f}x xargs")
if tmpfs:
    print(f"    with the instance directories on tmpfs: {per(tmpfs):.3f} ms/task, overhead "
          f"{per(tmpfs) - per(spawn):.3f} ms/task")
PY
done
