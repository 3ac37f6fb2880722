#!/usr/bin/env bash
# API benchmark: 1,000 registered services, then wrk against
#   (1) GET /api/v1/services/{name}   target >= 20,000 req/s, p99 < 5 ms
#   (2) GET /api/v1/services (all)    target p99 < 20 ms
# and the daemon's RSS afterwards (target < 30 MB). Uses the release build in build/.
#   bench/api.sh [DURATION_SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}
berth=build/src/berth/berth
[[ -x $berth ]] || { echo "build first: scripts/build" >&2; exit 1; }
command -v wrk >/dev/null || { echo "wrk is missing: scripts/setup installs it" >&2; exit 1; }

source bench/lib.sh
bench_scratch
bench_start_daemon "$dir" --threads 2
url=$BENCH_URL
export BERTH_TOKEN=$BENCH_TOKEN

/usr/bin/python3 - "$url" <<'PY'
import json, os, sys, urllib.request
url, token = sys.argv[1], os.environ["BERTH_TOKEN"]
def call(method, path, body):
    req = urllib.request.Request(url + path, method=method, data=json.dumps(body).encode(),
                                 headers={"Authorization": "Bearer " + token})
    urllib.request.urlopen(req).read()
# Reservations are admitted against the machine: 1,000 x 10 MB fits where 1,000 x 100 MB would not.
definition = {"container-tag": "latest", "memory-reservation": 10, "memory-limit": 150,
              "container-port": 80, "environment": [{"name": "MODE", "value": "bench"}]}
for i in range(1000):
    call("POST", "/api/v1/services", {"name": f"svc-{i}"})
    call("PUT", f"/api/v1/services/svc-{i}", definition)
PY

run() { wrk -t2 -c"$1" -d"${duration}s" --latency -s bench/api_get.lua "$url" | grep '^RESULT'; }
one=$(BENCH_SERVICES=1000 run 32)
list=$(BENCH_PATH=/api/v1/services run 4)
rss_kb=$(awk '/VmRSS/ {print $2}' /proc/$(cat "$dir/berth.pid")/status)

field() { sed -n "s/.*$2=\([0-9.]*\).*/\1/p" <<<"$1"; }
printf '%-34s %10s %10s %10s %8s\n' benchmark req/s p50_ms p99_ms errors
printf '%-34s %10s %10s %10s %8s\n' "GET /api/v1/services/{name}" "$(field "$one" rps)" \
  "$(field "$one" p50_ms)" "$(field "$one" p99_ms)" "$(field "$one" non2xx)"
printf '%-34s %10s %10s %10s %8s\n' "GET /api/v1/services (1000)" "$(field "$list" rps)" \
  "$(field "$list" p50_ms)" "$(field "$list" p99_ms)" "$(field "$list" non2xx)"
echo "daemon RSS after the runs: $((rss_kb / 1024)) MB"
/usr/bin/python3 - "$(field "$one" rps)" "$(field "$one" p99_ms)" "$(field "$list" p99_ms)" "$rss_kb" <<'PY'
import sys
rps, p99, list_p99, rss_kb = map(float, sys.argv[1:])
print(f"vs targets: get {rps/20000:.2f}x of 20k req/s, get p99 {p99:.2f}/5 ms, "
      f"list p99 {list_p99:.2f}/20 ms, RSS {rss_kb/1024:.1f}/30 MB")
PY
