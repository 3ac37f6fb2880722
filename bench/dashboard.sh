#!/usr/bin/env bash
# The dashboard's services view in Chromium with 1,000 services, against the same view with 10
# services measured in the same run (the table is virtualised: 1,000 should cost about what 10
# do). Prints the medians of first contentful paint, first paint of the table and time to
# interactive (visible rows' status filled in, main thread idle), and the 1,000 / 10 ratios
# (target: the table's first paint < 300 ms with 1,000 services).
#   bench/dashboard.sh [ROUNDS]     (default 7 page loads per project, after one warm-up)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
rounds=${1:-7}
berth=$PWD/build/src/berth/berth
[[ -x $berth ]] || { echo "build first: scripts/build" >&2; exit 1; }
[[ -x /usr/bin/chromium ]] || { echo "chromium is missing: scripts/setup installs it" >&2; exit 1; }
[[ -d tests/browser/node_modules/playwright-core ]] || { echo "run scripts/setup (playwright-core)" >&2; exit 1; }
bench_scratch
bench_start_daemon "$dir"
/usr/bin/python3 - "$BENCH_URL" "$BENCH_TOKEN" <<'PY'
import json, sys, urllib.request
from concurrent.futures import ThreadPoolExecutor
url, token = sys.argv[1], sys.argv[2]
def call(method, path, body=None):
    req = urllib.request.Request(url + path, method=method, data=json.dumps(body).encode(),
                                 headers={"Authorization": "Bearer " + token,
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())
for project, n in (("big", 1000), ("small", 10)):
    call("POST", "/api/v1/projects", {"name": project})
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: call("POST", f"/api/v1/services?project={project}",
                                     {"name": f"svc{i:04d}"}), range(n)))
PY
echo "dashboard: services view in headless Chromium, $rounds loads each, on $(nproc) cores"
node bench/tools/dashboard_bench.mjs "$BENCH_URL" "$BENCH_TOKEN" "$rounds" big small >"$dir/result.json"
/usr/bin/python3 - "$dir/result.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
big, small = r["big"], r["small"]
print(f"{'':28}{big['services']:>9} svc{small['services']:>9} svc{'ratio':>8}")
for key, what in (("fcp", "first contentful paint"), ("table", "first paint of the table"),
                  ("tti", "time to interactive")):
    print(f"{what:28}{big[key]:>9.0f} ms{small[key]:>10.0f} ms{big[key] / small[key]:>8.2f}x")
verdict = "met" if big["table"] < 300 else "NOT met"
print(f"target: first paint of the table < 300 ms with {big['services']} services: {verdict}")
PY
