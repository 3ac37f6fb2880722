"""Ping round trips through recipe graphs: berth's (HTTP -> handler -> graph -> answer) against
a direct ZeroMQ pipeline of the same berth-node processes, driven from here, in the same run.

    recipe_bench.py URL TOKEN BERTH_NODE SCRATCH [MESSAGES] [SECONDS]

For each shape (1 node: ping; 4 nodes: passthrough -> passthrough -> passthrough -> ping) and
each load (1 caller, sequential; 8 callers at once), prints messages/s and p50/p99 latency of
both (the median of 3 alternating rounds), and the ratio of berth's rate to the direct
pipeline's (target >= 0.5x). berth is driven
by wrk (one request in flight per connection), the direct pipeline from here with as many
messages in flight as there are callers.
"""
import http.client
import json
import os
import subprocess
import sys
import time
from urllib.parse import urlparse

import zmq

SHAPES = {
    "1-node": ["ping"],
    "4-node": ["passthrough", "passthrough", "passthrough", "ping"],
}
CALLERS = (1, 8)
ROUNDS = 3


def percentile(values, p):
    values = sorted(values)
    if not values:
        return 0.0
    k = min(len(values) - 1, max(0, int(round(p / 100.0 * (len(values) - 1)))))
    return values[k]


def api(url, token, method, path, body=None):
    u = urlparse(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    c.request(method, path, body=json.dumps(body) if body is not None else None,
              headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    c.close()
    if r.status >= 300:
        raise SystemExit(f"{method} {path}: {r.status} {data[:300]!r}")
    return json.loads(data) if data else None


# --- berth: wrk's callers over keep-alive connections, one request in flight each ----------

def run_berth(url, token, name, callers, seconds):
    env = dict(os.environ, BERTH_TOKEN=token, BENCH_PATH=f"/api/v1/recipes/{name}/serve")
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "api_get.lua")
    out = subprocess.run(["wrk", f"-t{min(callers, 2)}", f"-c{callers}", f"-d{seconds}s",
                          "--latency", "-s", script, url],
                         env=env, capture_output=True, text=True, check=True).stdout
    line = next(l for l in out.splitlines() if l.startswith("RESULT"))
    f = dict(kv.split("=") for kv in line.split()[1:])
    if int(f["errors"]) or int(f["non2xx"]):
        raise SystemExit(f"berth answered with errors: {line}")
    return float(f["rps"]), float(f["p50_ms"]) / 1e3, float(f["p99_ms"]) / 1e3


# --- direct: the same berth-node processes, START and END sockets of our own ---------------

class DirectPipeline:
    def __init__(self, node_program, scratch, types):
        self.dir = os.path.join(scratch, "direct-%d" % len(types))
        os.makedirs(self.dir, exist_ok=True)
        self.ctx = zmq.Context()
        self.start = self.ctx.socket(zmq.PUB)
        self.start.setsockopt(zmq.SNDHWM, 100000)
        start_ep = f"ipc://{self.dir}/start"
        self.start.bind(start_ep)
        self.procs = []
        prev = start_ep
        for i, t in enumerate(types):
            out = f"ipc://{self.dir}/{i}"
            cfg = {"recipe": "direct", "name": f"n{i}", "index": i, "type": t,
                   "inputs": [prev], "output": out, "args": {}}
            env = dict(os.environ, BERTH_NODE=json.dumps(cfg))
            self.procs.append(subprocess.Popen([node_program, t], env=env))
            prev = out
        self.end = self.ctx.socket(zmq.SUB)
        self.end.setsockopt(zmq.RCVHWM, 100000)
        self.end.setsockopt(zmq.SUBSCRIBE, b"")
        self.end.connect(prev)
        # Wait until a heartbeat crosses the whole pipeline (subscriptions are up).
        seq = 0
        deadline = time.monotonic() + 15
        while True:
            seq += 1
            self.start.send_multipart([b"h%d" % seq, b'{"stats":{}}'])
            if self.end.poll(20):
                self.end.recv_multipart()
                break
            if time.monotonic() > deadline:
                raise SystemExit("the direct pipeline did not come up")
        while self.end.poll(50):
            self.end.recv_multipart()

    def run(self, callers, n):
        """`callers` requests in flight at a time (8 callers each waiting for its answer)."""
        sent = {}
        lat = []
        next_id = 1
        t0 = time.perf_counter()
        in_flight = 0
        while len(lat) < n:
            while in_flight < callers and next_id <= n:
                sent[next_id] = time.perf_counter()
                self.start.send_multipart([b"m%d" % next_id, json.dumps({"id": next_id}).encode()])
                next_id += 1
                in_flight += 1
            head, body = self.end.recv_multipart()
            if head[:1] != b"m":
                continue
            i = int(head[1:])
            lat.append(time.perf_counter() - sent.pop(i))
            in_flight -= 1
        return n / (time.perf_counter() - t0), lat

    def close(self):
        for p in self.procs:
            p.kill()
            p.wait()
        self.ctx.destroy(linger=0)


def main():
    url, token, node_program, scratch = sys.argv[1:5]
    n = int(sys.argv[5]) if len(sys.argv) > 5 else 20000  # direct messages per measurement
    seconds = int(sys.argv[6]) if len(sys.argv) > 6 else 3  # of wrk against berth
    rows = []
    for shape, types in SHAPES.items():
        name = "b" + shape.split("-")[0]
        nodes = [{"type": t, "name": f"n{i}"} for i, t in enumerate(types)]
        edges = [[f"n{i}", f"n{i + 1}"] for i in range(len(types) - 1)]
        api(url, token, "POST", "/api/v1/recipes",
            {"name": name, "url": name, "graph": {"nodes": nodes, "edges": edges},
             "handlers": {"get": "ping"}})
        api(url, token, "POST", f"/api/v1/recipes/{name}/start", {})
        direct = DirectPipeline(node_program, scratch, types)
        try:
            direct.run(1, 200)  # warm-up
            for callers in CALLERS:
                # Alternating rounds, the median of each side: on 2 cores one round of either
                # varies by a quarter from one run to the next.
                berth_rounds, direct_rounds = [], []
                for _ in range(ROUNDS):
                    d_rate, d_lat = direct.run(callers, n)
                    direct_rounds.append((d_rate, percentile(d_lat, 50), percentile(d_lat, 99)))
                    berth_rounds.append(run_berth(url, token, name, callers, seconds))
                b_rate, b50, b99 = sorted(berth_rounds)[ROUNDS // 2]
                d_rate, d50, d99 = sorted(direct_rounds)[ROUNDS // 2]
                rows.append((shape, callers, b_rate, b50, b99, d_rate, d50, d99))
        finally:
            direct.close()
            api(url, token, "POST", f"/api/v1/recipes/{name}/stop")
            api(url, token, "DELETE", f"/api/v1/recipes/{name}")
    print(f"{'graph':8} {'callers':>7} | {'berth msg/s':>11} {'p50 ms':>7} {'p99 ms':>7} | "
          f"{'direct msg/s':>12} {'p50 ms':>7} {'p99 ms':>7} | {'ratio':>6}")
    for shape, callers, br, b50, b99, dr, d50, d99 in rows:
        print(f"{shape:8} {callers:>7} | {br:>11.0f} {b50 * 1e3:>7.2f} {b99 * 1e3:>7.2f} | "
              f"{dr:>12.0f} {d50 * 1e3:>7.2f} {d99 * 1e3:>7.2f} | {br / dr:>5.2f}x")
    print("ratio: berth's rate (HTTP request -> handler -> graph -> answer) / the direct "
          "pipeline's (ZeroMQ in and out of the same berth-node processes); target >= 0.5x")


if __name__ == "__main__":
    main()
