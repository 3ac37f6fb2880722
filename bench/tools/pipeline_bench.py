"""Drives bench/pipelines.sh: the same DAG of trivial steps through berth and through make -j,
in the same run, and the latency from POST to a run's first step running.

    pipeline_bench.py URL TOKEN WORKDIR STEPS JOBS
Prints one line per figure; the shell script only starts and stops the daemon.
"""
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request

url, token, work, n, jobs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])


def call(method, path, body=None, timeout=600):
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data=data, method=method,
                                 headers={"Authorization": "Bearer " + token,
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def shape(kind):
    """Step names with their parents: wide (one root, every other step its child) or deep
    (levels of `jobs` steps, each depending on every step of the level before)."""
    steps = []
    if kind == "wide":
        steps.append(("s0", []))
        steps += [(f"s{i}", ["s0"]) for i in range(1, n)]
    else:
        prev = []
        for i in range(n):
            level, slot = divmod(i, jobs)
            if slot == 0 and i > 0:
                prev = [f"s{j}" for j in range(i - jobs, i)]
            steps.append((f"s{i}", list(prev)))
    return steps


def make_seconds(steps):
    mk = os.path.join(work, "Makefile")
    with open(mk, "w") as f:
        f.write(".PHONY: all " + " ".join(s for s, _ in steps) + "\n")
        f.write("all: " + " ".join(s for s, _ in steps) + "\n")
        for s, parents in steps:
            f.write(f"{s}: {' '.join(parents)}\n\t@true\n")
    t0 = time.monotonic()
    subprocess.run(["make", "-s", f"-j{jobs}", "-f", mk, "all"], check=True, cwd=work)
    return time.monotonic() - t0


def rfc3339(s):
    from datetime import datetime
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def berth_seconds(kind, steps):
    name = f"bench-{kind}"
    pipeline = {"name": name, "steps": [{"name": s, "command": "true", "after": p}
                                        for s, p in steps]}
    call("POST", f"/api/v1/pipelines?project_dir={work}", json.dumps(pipeline).encode())
    run = call("POST", f"/api/v1/pipelines/{name}/runs", {})
    while True:
        time.sleep(1.0)
        r = call("GET", f"/api/v1/runs/{run['uuid']}")
        if r["status"] in ("SUCCESS", "FAILURE", "ABORTED"):
            break
    if r["status"] != "SUCCESS":
        bad = [s for s in r["steps"] if s["status"] != "SUCCESS"][:3]
        raise SystemExit(f"berth's {kind} run ended {r['status']}: {bad}")
    # The daemon's own timestamps: from the run's creation to its last step's end.
    return rfc3339(r["finished_at"]) - rfc3339(r["created_at"])


for kind in ("wide", "deep"):
    steps = shape(kind)
    m = make_seconds(steps)
    b = berth_seconds(kind, steps)
    ratio = (n / b) / (n / m)
    over = (b - m) * jobs / n * 1000
    print(f"{kind}: make -j{jobs} {n / m:.0f} steps/s ({m:.2f} s), berth {n / b:.0f} steps/s "
          f"({b:.2f} s): {ratio:.2f}x make (target >= 0.8x: "
          f"{'meets' if ratio >= 0.8 else 'MISSES'}); overhead {over:.2f} ms/step")

# POST -> first step running: the step writes the time it started.
marker = os.path.join(work, "started")
one = {"name": "bench-first", "steps": [{"name": "only", "command": f"date +%s%N > {marker}"}]}
call("POST", f"/api/v1/pipelines?project_dir={work}", json.dumps(one).encode())
lat = []
for _ in range(40):
    if os.path.exists(marker):
        os.unlink(marker)
    t0 = time.time_ns()
    run = call("POST", "/api/v1/pipelines/bench-first/runs", {})
    while not os.path.exists(marker) or os.path.getsize(marker) == 0:
        time.sleep(0.001)
    lat.append((int(open(marker).read()) - t0) / 1e6)
    while call("GET", f"/api/v1/runs/{run['uuid']}")["status"] not in ("SUCCESS", "FAILURE"):
        time.sleep(0.005)
p50 = statistics.median(lat)
print(f"POST -> first step running: p50 {p50:.1f} ms, max {max(lat):.1f} ms over {len(lat)} runs "
      f"(target p50 < 20 ms: {'meets' if p50 < 20 else 'MISSES'})")
