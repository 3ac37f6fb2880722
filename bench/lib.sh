# Shared by the benchmarks (source it): start a daemon in a scratch directory, and stop
# everything it started through berth's own API and by pid, never by matching process names,
# since other daemons (and their instances) may run on the same machine.
#   bench_scratch                            sets $dir to a new directory that is cleaned up
#                                            (bench_stop, then removed) when the script exits
#   bench_start_daemon DIR [serve args...]   sets BENCH_URL and BENCH_TOKEN
#   bench_stop DIR                           cancels unfinished runs, stops recipes, deletes every service,
#                                            stops the daemon
# The Python parts import bench/tools/bench_proc.py (CPU, RSS, percentiles of a process).

bench_scratch() {
  dir=$(mktemp -d)
  trap 'bench_stop "$dir"; rm -rf "$dir"' EXIT
}

# Compiles bench/tools/NAME.c where instances can run it, and prints its path: not in the
# scratch directory, since instances have a private /tmp and the data dir is hidden from them.
bench_program() {
  local out=$PWD/build/bench/programs
  mkdir -p "$out"
  cc -O2 -o "$out/$1" "bench/tools/$1.c"
  echo "$out/$1"
}

bench_start_daemon() {
  local dir=$1
  shift
  "$berth" serve --data-dir "$dir/data" --listen 127.0.0.1:0 "$@" 2>"$dir/berth.log" &
  echo $! >"$dir/berth.pid"
  disown  # a kill -9 of it (bench/scale.sh does one) is not news for the shell to print
  for _ in $(seq 200); do [[ -f $dir/data/daemon.json ]] && break; sleep 0.05; done
  BENCH_URL=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["url"])' \
    "$dir/data/daemon.json")
  BENCH_TOKEN=$(cat "$dir/data/admin.token")
  export BENCH_URL BENCH_TOKEN
}

# Deletes the services of every project (their instances stop and drain), waits for their
# shims to go, stops the daemon by its pid, then kills any shim still alive by the pid it
# recorded in its instance directory.
bench_stop() {
  local dir=$1
  if [[ -f $dir/berth.pid ]] && kill -0 "$(cat "$dir/berth.pid")" 2>/dev/null; then
    /usr/bin/python3 - "$BENCH_URL" "$BENCH_TOKEN" <<'PY' || true
import json, sys, urllib.request
from concurrent.futures import ThreadPoolExecutor
url, token = sys.argv[1], sys.argv[2]
def call(method, path):
    req = urllib.request.Request(url + path, method=method,
                                 headers={"Authorization": "Bearer " + token})
    with urllib.request.urlopen(req, timeout=60) as r:
        body = r.read()
        return json.loads(body) if body else None
jobs = []
for p in call("GET", "/api/v1/projects")["projects"]:
    name = p["name"]
    # Unfinished pipeline runs are cancelled: their steps' trees are stopped.
    for r in call("GET", f"/api/v1/runs?project={name}&limit=0")["runs"]:
        if r["status"] in ("PENDING", "STARTED"):
            call("POST", f"/api/v1/runs/{r['uuid']}/cancel")
    # Started recipes are stopped: their nodes' processes go at once.
    for r in call("GET", f"/api/v1/recipes?project={name}")["recipes"]:
        if r["state"] != "STOPPED":
            call("POST", f"/api/v1/recipes/{r['name']}/stop?project={name}")
    for s in call("GET", f"/api/v1/services?project={name}")["services"]:
        jobs.append(f"/api/v1/services/{s['name']}?project={name}")
with ThreadPoolExecutor(8) as pool:
    list(pool.map(lambda path: call("DELETE", path), jobs))
PY
    # Deleted services' instances drain and stop; wait for their shims.
    for _ in $(seq 200); do
      [[ -z $(bench_live_shims "$dir") ]] && break
      sleep 0.05
    done
    kill "$(cat "$dir/berth.pid")" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$(cat "$dir/berth.pid")" 2>/dev/null || break; sleep 0.05; done
  fi
  local pids
  pids=$(bench_live_shims "$dir")
  if [[ -n $pids ]]; then
    echo "bench: killing $(wc -w <<<"$pids") shims left behind" >&2
    # The shim and its program's process group (the program leads its own group).
    for p in $pids; do kill -KILL "$p" 2>/dev/null || true; done
    bench_program_groups "$dir" | while read -r g; do kill -KILL -- "-$g" 2>/dev/null || true; done
  fi
}

# Shim pids recorded under DIR/data/instances that are still alive.
bench_live_shims() {
  /usr/bin/python3 - "$1/data/instances" <<'PY'
import glob, json, os, sys
for f in glob.glob(sys.argv[1] + "/*/shim.json"):
    try:
        pid = json.load(open(f))["shim_pid"]
        if os.path.exists(f"/proc/{pid}") and not os.path.exists(os.path.dirname(f) + "/exit.json"):
            print(pid)
    except (OSError, ValueError, KeyError):
        pass
PY
}

bench_program_groups() {
  /usr/bin/python3 - "$1/data/instances" <<'PY'
import glob, json, sys
for f in glob.glob(sys.argv[1] + "/*/shim.json"):
    try:
        print(json.load(open(f))["pid"])
    except (OSError, ValueError, KeyError):
        pass
PY
}
