#!/usr/bin/env bash
# Gateway benchmark: wrk against the same backend (nginx answering "ok", 1 worker, run as a
# berth instance) three ways, in one run with the same wrk settings:
#   (a) directly, (b) through nginx (1 worker, upstream keepalive), (c) through berth's
#   gateway (berth serve --threads 1).
# Prints req/s, p50 and p99 of each run and the ratios berth/nginx of the medians.
#   bench/gateway.sh [DURATION_SECONDS] [CONNECTIONS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}
conns=${2:-50}
rounds=${3:-3}
berth=$PWD/build/src/berth/berth
[[ -x $berth ]] || { echo "build first: scripts/build" >&2; exit 1; }
command -v wrk >/dev/null && command -v nginx >/dev/null ||
  { echo "wrk and nginx are needed: scripts/setup installs them" >&2; exit 1; }
dir=$(mktemp -d)
source bench/lib.sh
cleanup() {
  # The peer proxy by its pid file; berth's backend instance through berth's API.
  [[ -f $dir/proxy.pid ]] && kill "$(cat "$dir/proxy.pid")" 2>/dev/null || true
  bench_stop "$dir"
  rm -rf "$dir"
}
trap cleanup EXIT

# The backend bundle: nginx on the instance's own address, answering a small body.
mkdir -p "$dir/bundle"
cat >"$dir/bundle/nginx.conf.in" <<'CONF'
worker_processes 1;
error_log stderr warn;
pid nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  # Under its prefix: the project's user may not write Debian's /var/lib/nginx.
  client_body_temp_path tmp/body; proxy_temp_path tmp/proxy; fastcgi_temp_path tmp/fastcgi;
  uwsgi_temp_path tmp/uwsgi; scgi_temp_path tmp/scgi;
  server {
    listen @ADDR@ reuseport;
    location / { return 200 "ok\n"; }
  }
}
CONF
cat >"$dir/bundle/berth.yaml" <<'YAML'
command: sed "s/@ADDR@/$HOST:$PORT/" nginx.conf.in > nginx.conf && mkdir -p tmp && exec nginx -p "$PWD" -c "$PWD/nginx.conf" -g "daemon off;"
port: 8080
YAML
tar czf "$dir/bundle.tgz" -C "$dir/bundle" .

bench_start_daemon "$dir" --threads 1
url=$BENCH_URL
token=$BENCH_TOKEN
auth=(-H "Authorization: Bearer $token")
curl -sf "${auth[@]}" -X POST "$url/api/v1/services" -d '{"name":"echo"}' >/dev/null
curl -sf "${auth[@]}" -X PUT --data-binary @"$dir/bundle.tgz" "$url/api/v1/services/echo/artifacts/v1" >/dev/null
curl -sf "${auth[@]}" -X PUT "$url/api/v1/services/echo" \
  -d '{"container-tag":"v1","base-path":"strip","auth":"public","health-check":{"rel_path":"/"}}' >/dev/null
backend=""
for _ in $(seq 200); do
  backend=$(curl -sf "${auth[@]}" "$url/api/v1/services/echo/status" | /usr/bin/python3 -c '
import json, sys
d = json.load(sys.stdin)
print(next((i["host"] + ":" + str(i["port"]) for i in d["instances"] if i["state"] == "running"), ""))')
  [[ -n $backend ]] && break
  sleep 0.05
done
[[ -n $backend ]] || { echo "the backend instance did not become ready" >&2; cat "$dir/berth.log" >&2; exit 1; }

# nginx as the peer proxy, 1 worker, keepalive to the same backend.
proxy_port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$dir/proxy.conf" <<CONF
worker_processes 1;
error_log stderr warn;
pid $dir/proxy.pid;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  upstream backend { server $backend; keepalive 64; }
  server {
    listen 127.0.0.1:$proxy_port;
    location /default-echo/ {
      proxy_pass http://backend/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
CONF
nginx -p "$dir" -c "$dir/proxy.conf" -g "daemon on;"
sleep 0.3

run() {  # name url
  wrk -t1 -c"$conns" -d"${duration}s" --latency "$2" >"$dir/$1.txt"
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
# Rounds alternate nginx and berth (and which goes first), so that neither always runs on a
# warmer or busier machine; the ratios are of the medians.
rows=("$(run direct "http://$backend/")")
for ((r = 1; r <= rounds; r++)); do
  if ((r % 2)); then
    rows+=("$(run nginx "http://127.0.0.1:$proxy_port/default-echo/")" "$(run berth "$url/default-echo/")")
  else
    rows+=("$(run berth "$url/default-echo/")" "$(run nginx "http://127.0.0.1:$proxy_port/default-echo/")")
  fi
done
/usr/bin/python3 - "$duration" "$conns" "$rounds" "${rows[@]}" <<'PY'
import statistics, sys
duration, conns, rounds = sys.argv[1:4]
rows = [line.split() for line in sys.argv[4:]]
print(f"wrk -t1 -c{conns} -d{duration}s, same backend (nginx return 200, 1 worker), "
      f"{rounds} alternating rounds")
print(f"{'path':<16}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'non-2xx':>10}")
for name, rps, p50, p99, bad in rows:
    print(f"{name:<16}{float(rps):>10.0f}{float(p50):>10.3f}{float(p99):>10.3f}{bad:>10}")
def median(name, col):
    return statistics.median(float(r[col]) for r in rows if r[0] == name)
rps = median("berth", 1) / median("nginx", 1)
p99 = median("berth", 3) / median("nginx", 3)
print(f"berth / nginx (medians): {rps:.2f}x req/s, p99 {p99:.2f}x "
      f"(target: >= 1.0x req/s, p99 <= 1.0x)")
PY
