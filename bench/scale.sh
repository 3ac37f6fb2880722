#!/usr/bin/env bash
# Scale of one node: N services of a trivial program (bench/tools/tiny_http.c), each figure
# printed against its target:
#   deploy rate (create + PUT, 8 clients at once)       target >= 200 services/s
#   time until every service is ready
#   status p99 while they start (GET .../status, sampled from a process of its own)
#                                                        target < 5 ms
#   daemon RSS with all running                          target < 100 MB at 10,000
#   daemon idle CPU over 60 s (a health-check interval)  target < 1 % at 10,000
#   berth's memory per instance: the shim's PSS and private memory   target <= 256 KB
#   GET /api/v1/services p99 (the whole list)
#   kill -9 of the daemon + restart: all re-adopted, none restarted, time until all are ready
#                                                        target < 2 s at 10,000
# Each instance is two processes (shim + program): N is capped by the machine's pid and thread
# limits, and the bench says so when it lowers N. Stops what it started through berth's API.
#   bench/scale.sh [N]   (default 1000)
set -euo pipefail
cd "$(dirname "$0")/.."
want=${1:-1000}
berth=$PWD/build/src/berth/berth
[[ -x $berth ]] || { echo "build first: scripts/build" >&2; exit 1; }
source bench/lib.sh
bench_scratch
tiny_http=$(bench_program tiny_http)

# Processes the machine allows: keep a quarter of the headroom for everything else.
pid_max=$(cat /proc/sys/kernel/pid_max)
threads_max=$(cat /proc/sys/kernel/threads-max)
nproc_limit=$(ulimit -u)
[[ $nproc_limit == unlimited ]] && nproc_limit=$threads_max
limit=$(( ( (pid_max < threads_max ? pid_max : threads_max) < nproc_limit ?
            (pid_max < threads_max ? pid_max : threads_max) : nproc_limit) * 3 / 4 / 2 ))
n=$want
if (( n > limit )); then
  echo "scale: the machine allows about $limit instances (pid_max $pid_max, threads-max" \
       "$threads_max, ulimit -u $nproc_limit); running $limit instead of $want"
  n=$limit
fi
# One descriptor per instance in the daemon (its shim's pidfd), plus sockets.
ulimit -n "$(ulimit -Hn)"

bench_start_daemon "$dir" --threads 2
/usr/bin/python3 - "$dir" "$n" "$berth" "$tiny_http" <<'PY'
import json, os, signal, statistics, subprocess, sys, time, urllib.error, urllib.request
sys.path.insert(0, "bench/tools")
from bench_proc import cpu_seconds, rss_mb
from concurrent.futures import ThreadPoolExecutor
d, n, berth, tiny_http = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
url, token = os.environ["BENCH_URL"], os.environ["BENCH_TOKEN"]

def call(method, path, body=None, base=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request((base or url) + path, method=method, data=data,
                                 headers={"Authorization": "Bearer " + token})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read() or b"null")

def daemon_pid():
    return json.load(open(f"{d}/data/daemon.json"))["pid"]

def p99(samples):
    s = sorted(samples)
    return s[min(len(s) - 1, int(len(s) * 0.99))]

def verdict(value, target, lower_is_better=True):
    ok = value <= target if lower_is_better else value >= target
    return "meets" if ok else "MISSES"

tiny = {"command": [tiny_http], "container-port": 8080, "base-path": "strip",
        "memory-reservation": 1, "health-check": {"type": "tcp", "interval": 60}}
names = [f"s{i}" for i in range(n)]

# Status latency of one service, sampled while the rest are deployed and started.
call("POST", "/api/v1/services", {"name": "probe"})
call("PUT", "/api/v1/services/probe", tiny)
sampler = subprocess.Popen(["/usr/bin/python3", "bench/tools/status_sampler.py", url, token,
                            "/api/v1/services/probe/status"],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

def deploy(name):
    call("POST", "/api/v1/services", {"name": name})
    call("PUT", f"/api/v1/services/{name}", tiny)
t0 = time.perf_counter()
with ThreadPoolExecutor(8) as pool:
    list(pool.map(deploy, names))
deploy_s = time.perf_counter() - t0

def all_ready(deadline_s):
    """Seconds until every service has its instance ready, or None at the deadline. One list
    a round (each service's `running`): a status call per service would make the bench's own
    client the slow part at 10,000."""
    t0 = time.perf_counter()
    wanted = set(names)
    while time.perf_counter() - t0 < deadline_s:
        try:
            services = call("GET", "/api/v1/services")["services"]
        except urllib.error.HTTPError:
            raise  # an answer, and not the one wanted: say so rather than wait it out
        except OSError:  # no answer yet: the daemon is starting
            services = []
        ready = {s["name"] for s in services if s["name"] in wanted and s["running"] >= 1}
        if ready == wanted:
            return time.perf_counter() - t0
        time.sleep(0.05)
    return None
ready_s = all_ready(600)
out, _ = sampler.communicate("")
if sampler.returncode != 0:
    sys.exit("scale: the status sampler failed")
status_ms = [float(x) for x in out.split()]
rate = n / deploy_s
print(f"scale: {n} services of a trivial program, on {os.cpu_count()} cores")
print(f"  deploy rate: {rate:.0f} services/s ({n} in {deploy_s:.1f} s) "
      f"(target >= 200/s: {verdict(rate, 200, False)})")
if ready_s is None:
    print("  ready: NOT all ready within 600 s after the last deploy")
else:
    print(f"  all ready: {deploy_s + ready_s:.1f} s after the first deploy "
          f"({ready_s:.1f} s after the last)")
sp99 = p99(status_ms)
print(f"  status p99 during the mass start: {sp99:.2f} ms over {len(status_ms)} calls "
      f"(target < 5 ms: {verdict(sp99, 5)})")

time.sleep(3)
pid = daemon_pid()
rss = rss_mb(pid)
# Over one health-check interval of the services (60 s): every instance is checked once in
# it, so the figure is the steady cost, not a quiet moment between rounds.
c0, t0 = cpu_seconds(pid), time.time()
time.sleep(tiny["health-check"]["interval"])
cpu = (cpu_seconds(pid) - c0) / (time.time() - t0) * 100
print(f"  daemon RSS: {rss:.1f} MB (target < 100 MB: {verdict(rss, 100)})")
print(f"  daemon idle CPU: {cpu:.2f} % (target < 1 %: {verdict(cpu, 1)})")

# Memory berth spends per instance: its shim.
pss, private = [], []
shims = {}
for name in os.listdir(f"{d}/data/instances"):
    try:
        rec = json.load(open(f"{d}/data/instances/{name}/shim.json"))
    except (OSError, ValueError):
        continue
    shims[name] = rec
for rec in list(shims.values())[:200]:
    try:
        fields = {}
        for line in open(f"/proc/{rec['shim_pid']}/smaps_rollup"):
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                fields[parts[0].rstrip(":")] = int(parts[1])
        pss.append(fields["Pss"])
        private.append(fields["Private_Dirty"] + fields["Private_Clean"])
    except (OSError, KeyError):
        pass
if pss:
    mp, mpriv = statistics.mean(pss), statistics.mean(private)
    print(f"  per instance (berth-shim): PSS {mp:.0f} KB, private {mpriv:.0f} KB over "
          f"{len(pss)} shims (target <= 256 KB: {verdict(max(mp, mpriv), 256)})")

list_ms = []
for _ in range(50):
    t0 = time.perf_counter()
    call("GET", "/api/v1/services")
    list_ms.append((time.perf_counter() - t0) * 1000)
print(f"  GET /api/v1/services ({n + 1} services) p99: {p99(list_ms):.1f} ms")

# kill -9 and restart: every instance re-adopted, none restarted.
before = {k: v["pid"] for k, v in shims.items()}
os.kill(pid, signal.SIGKILL)
while os.path.exists(f"/proc/{pid}") and open(f"/proc/{pid}/stat").read().split(") ")[1][0] != "Z":
    time.sleep(0.01)
os.remove(f"{d}/data/daemon.json")
t0 = time.perf_counter()
proc = subprocess.Popen([berth, "serve", "--data-dir", f"{d}/data", "--listen", "127.0.0.1:0",
                         "--threads", "2"], stderr=open(f"{d}/berth2.log", "w"))
open(f"{d}/berth.pid", "w").write(str(proc.pid))
while not os.path.exists(f"{d}/data/daemon.json"):
    time.sleep(0.005)
url = json.load(open(f"{d}/data/daemon.json"))["url"]
os.environ["BENCH_URL"] = url
readopt_s = all_ready(120)
total = time.perf_counter() - t0
after = {}
for name in os.listdir(f"{d}/data/instances"):
    try:
        after[name] = json.load(open(f"{d}/data/instances/{name}/shim.json"))["pid"]
    except (OSError, ValueError):
        pass
restarted = sum(1 for k, p in before.items() if after.get(k) != p)
new = len(set(after) - set(before))
print(f"  kill -9 + restart: {len(before) - restarted}/{len(before)} instances re-adopted, "
      f"{restarted} restarted, {new} new; all ready {total:.2f} s after the restart "
      f"(target < 2 s: {verdict(total, 2)})" if readopt_s is not None else
      "  kill -9 + restart: NOT all ready within 120 s")
open(f"{d}/url", "w").write(url)
PY
BENCH_URL=$(cat "$dir/url")
export BENCH_URL
