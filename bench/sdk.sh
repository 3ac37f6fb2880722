#!/usr/bin/env bash
# SDK benchmark: the scaffold's hello entrypoint (POST {"name": "Ada"}) through berth's gateway,
# for each SDK against a peer doing the same work without it, in one run with the same wrk
# settings:
#   Python: the SDK's service vs a plain http.server handler
#   C++:    the SDK's service vs a bare Beast coroutine handler (bench/tools/beast_hello.cc)
# Prints req/s, p50 and p99 of each and the ratios SDK/peer.
#   bench/sdk.sh [DURATION_SECONDS] [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
duration=${1:-10}
conns=${2:-16}
berth=$repo/build/src/berth/berth
[[ -x $berth ]] || { echo "build first: scripts/build" >&2; exit 1; }
command -v wrk >/dev/null || { echo "wrk is needed: scripts/setup installs it" >&2; exit 1; }
source bench/lib.sh
bench_scratch

bench_start_daemon "$dir"
url=$BENCH_URL
export BERTH_URL=$url BERTH_TOKEN=$(cat "$dir/data/admin.token") HOME=$dir
printf 'auth: public\n' >"$dir/public.yaml"

# The SDK services, as berth init writes them.
$berth init "$dir/py-sdk" >/dev/null
$berth init "$dir/cpp-sdk" --lang cpp >/dev/null
# The peers.
mkdir -p "$dir/py-plain" "$dir/cpp-beast"
cat >"$dir/py-plain/peer.py" <<'PY'
import json, os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Hello(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        out = json.dumps(f"Hello {body['name']}").encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass

ThreadingHTTPServer((os.environ["HOST"], int(os.environ["PORT"])), Hello).serve_forever()
PY
printf 'command: ["python3", "peer.py"]\nport: 8080\n' >"$dir/py-plain/berth.yaml"
cp bench/tools/beast_hello.cc "$dir/cpp-beast/"
echo "compiling the bare Beast peer..." >&2
g++ -std=c++20 -O2 -o "$dir/cpp-beast/beast_hello" "$dir/cpp-beast/beast_hello.cc" -lboost_json -pthread
rm "$dir/cpp-beast/beast_hello.cc"
printf 'command: ["./beast_hello"]\nport: 8080\n' >"$dir/cpp-beast/berth.yaml"

for svc in py-sdk py-plain cpp-sdk cpp-beast; do
  echo "deploying $svc..." >&2
  $berth deploy "$svc" 1.0.0 "$dir/$svc" -f "$dir/public.yaml" --timeout 600 >/dev/null
  curl -sf -X POST -d '{"name": "Ada"}' "$url/default-$svc/hello" | grep -q '"Hello Ada"' ||
    { echo "$svc does not answer Hello Ada" >&2; exit 1; }
done

run() {  # name
  wrk -t1 -c"$conns" -d"${duration}s" --latency -s bench/sdk_post.lua "$url/default-$1/hello" >"$dir/$1.txt"
  /usr/bin/python3 - "$dir/$1.txt" "$1" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
def ms(label):
    m = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", text)
    v, unit = float(m.group(1)), m.group(2)
    return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
print(f"{sys.argv[2]} {rps:.0f} {ms('50')} {ms('99')} {errors.group(1) if errors else 0}")
PY
}
rows=()
for svc in py-sdk py-plain cpp-sdk cpp-beast; do
  rows+=("$(run "$svc")")
done
/usr/bin/python3 - "$duration" "$conns" "${rows[@]}" <<'PY'
import sys
duration, conns, *lines = sys.argv[1:]
rows = {l.split()[0]: l.split()[1:] for l in lines}
print(f"wrk -t1 -c{conns} -d{duration}s, POST /default-<service>/hello {{\"name\": \"Ada\"}} through the gateway")
print(f"{'service':<12}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'non-2xx':>10}")
for name, (rps, p50, p99, bad) in rows.items():
    print(f"{name:<12}{float(rps):>10.0f}{float(p50):>10.3f}{float(p99):>10.3f}{bad:>10}")
for sdk, peer in (("py-sdk", "py-plain"), ("cpp-sdk", "cpp-beast")):
    s, p = rows[sdk], rows[peer]
    print(f"{sdk} / {peer}: {float(s[0]) / float(p[0]):.2f}x req/s, p99 {float(s[2]) / float(p[2]):.2f}x")
PY
