#!/usr/bin/env bash
# Runtime benchmarks, each against its own target:
#   (1) definition PUT -> instance healthy, trivial program (target p50 < 50 ms)
#   (2) 200 supervised instances: daemon RSS (target < 50 MB) and idle CPU (target < 1%)
#   (3) log ingest from one chatty instance (target >= 100 MB/s), and the instance's own time
#       under berth vs writing to /dev/null
# Uses the release build in build/.   bench/runtime.sh [INSTANCES]
set -euo pipefail
cd "$(dirname "$0")/.."
instances=${1:-200}
berth=$PWD/build/src/berth/berth
[[ -x $berth ]] || { echo "build first: scripts/build" >&2; exit 1; }
source bench/lib.sh
bench_scratch
tiny_http=$(bench_program tiny_http)
chatty=$(bench_program chatty)

bench_start_daemon "$dir" --threads 2

/usr/bin/python3 - "$dir" "$instances" "$tiny_http" "$chatty" <<'PY'
import json, os, statistics, sys, time, urllib.request
sys.path.insert(0, "bench/tools")
from bench_proc import cpu_seconds, rss_mb
d, n, tiny_http, chatty = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
info = json.load(open(f"{d}/data/daemon.json"))
url, pid = info["url"], info["pid"]
token = open(f"{d}/data/admin.token").read().strip()

def call(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url + path, method=method, data=data,
                                 headers={"Authorization": "Bearer " + token})
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read() or b"null")

tiny = {"command": [tiny_http], "container-port": 8080,
        "base-path": "strip", "health-check": {"rel_path": "/", "interval": 30}}

# (1) PUT -> healthy, over 20 new revisions of one service.
call("POST", "/api/v1/services", {"name": "lat"})
samples = []
for i in range(20):
    body = dict(tiny, environment=[{"name": "ROUND", "value": str(i)}])
    t0 = time.perf_counter()
    rev = call("PUT", "/api/v1/services/lat", body)["revision"]
    while True:
        st = call("GET", "/api/v1/services/lat/status")
        if st["active_revision"] == rev and st["running"] >= 1:
            break
        time.sleep(0.001)
    samples.append((time.perf_counter() - t0) * 1000)
call("DELETE", "/api/v1/services/lat")
p50 = statistics.median(samples)
print(f"PUT -> healthy: p50 {p50:.1f} ms, max {max(samples):.1f} ms over {len(samples)} "
      f"rollouts (target p50 < 50 ms: {p50/50:.2f}x of budget)")

# (2) n supervised instances.
for i in range(n):
    call("POST", "/api/v1/services", {"name": f"s{i}"})
    call("PUT", f"/api/v1/services/s{i}", tiny)
deadline = time.time() + 120
while time.time() < deadline:
    ready = sum(call("GET", f"/api/v1/services/s{i}/status")["running"] for i in range(0, n, 10))
    if ready == len(range(0, n, 10)):
        break
    time.sleep(0.5)
time.sleep(2)
c0, t0 = cpu_seconds(pid), time.time()
time.sleep(10)
cpu = (cpu_seconds(pid) - c0) / (time.time() - t0) * 100
rss = rss_mb(pid)
print(f"{n} instances: daemon RSS {rss:.1f} MB (target < 50: {rss/50:.2f}x), idle CPU "
      f"{cpu:.2f}% (target < 1%: {cpu:.2f}x)")
for i in range(n):
    call("DELETE", f"/api/v1/services/s{i}")

# (3) log ingest.
lines = 2_000_000
t0 = time.perf_counter()
os.system(f"{chatty} {lines} > /dev/null 2>{d}/devnull.txt")
devnull_s = float(open(f"{d}/devnull.txt").read().split()[1])
# The floor for any log collector that reads a pipe: the same program piped into cat.
os.system(f"{chatty} {lines} 2>{d}/pipe.txt | cat > /dev/null")
pipe_s = float(open(f"{d}/pipe.txt").read().split()[1])
call("POST", "/api/v1/services", {"name": "chatty"})
t0 = time.perf_counter()
call("PUT", "/api/v1/services/chatty",
     {"command": ["sh", "-c", f"{chatty} {lines}; sleep 3600"], "health-check": {"type": "tcp"}})
logdir = None
size = 0
want = lines * 100
while time.perf_counter() - t0 < 120:
    for inst in os.listdir(f"{d}/data/instances"):
        logdir = f"{d}/data/instances/{inst}/logs"
    if logdir and os.path.isdir(logdir):
        try:  # the log may be between a rotation and its next file
            size = sum(os.path.getsize(os.path.join(logdir, f)) for f in os.listdir(logdir))
            body = open(os.path.join(logdir, "current.log"), "rb").read()
        except FileNotFoundError:
            continue
        if b"elapsed" in body[-4096:]:
            break
    time.sleep(0.02)
wall = time.perf_counter() - t0
tail = open(os.path.join(logdir, "current.log")).read().splitlines()
berth_s = next(float(l.rsplit(" ", 1)[1]) for l in reversed(tail) if "elapsed" in l)
raw = lines * 101  # bytes the program wrote
print(f"log ingest: {raw/berth_s/1e6:.0f} MB/s of program output through the shim "
      f"(target >= 100 MB/s: {raw/berth_s/1e6/100:.2f}x); {size/1e6:.0f} MB on disk incl. "
      f"timestamps, rotated at 10 MB x 5")
print(f"chatty program: {berth_s:.3f} s under berth vs {devnull_s:.3f} s writing to /dev/null "
      f"({berth_s/devnull_s:.2f}x) and {pipe_s:.3f} s piped into cat ({berth_s/pipe_s:.2f}x)")
call("DELETE", "/api/v1/services/chatty")
PY
