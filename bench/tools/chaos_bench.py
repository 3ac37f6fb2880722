"""The chaos suite behind bench/chaos.sh, in two parts.

1. kill -9: writers create, push, define and delete services while pipeline runs go on; the
   daemon is killed with SIGKILL at random moments and started again on the same data dir.
   Every write that got a 2xx must be there afterwards (lost: 0); two sentinel services must
   keep their very processes (spurious restarts: 0); no run may stay unfinished once its
   daemon is back; no shim may run that no instance of the status owns (orphans: 0); and no
   half-written upload or instance directory may stay (leftovers: 0).
2. Rolling updates under load: a client calls a service through the gateway without pause
   while it is updated to a good revision, one that exits at once, one that never gets
   healthy and one that crashes 2 s after going live. Failed requests are counted per update
   (target for the good one: 0); each bad revision must be rolled back with the previous one
   still serving.

usage: chaos_bench.py BERTH DIR KILLS
"""
import io
import json
import os
import random
import signal
import subprocess
import sys
import tarfile
import threading
import time
import urllib.error
import urllib.request

BERTH, DIR, KILLS = sys.argv[1], sys.argv[2], int(sys.argv[3])
DATA = os.path.join(DIR, "data")

APP = r"""
import http.server, os, sys, threading
text = sys.argv[1].encode()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        sick = os.environ.get("SICK") == "1"
        self.send_response(500 if sick else 200)
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)
    def log_message(self, *a):
        pass
if os.environ.get("EXIT_AT_ONCE") == "1":
    sys.exit(3)
srv = http.server.ThreadingHTTPServer((os.environ["HOST"], int(os.environ["PORT"])), H)
if os.environ.get("DIE_AFTER"):
    threading.Timer(float(os.environ["DIE_AFTER"]), lambda: os._exit(3)).start()
srv.serve_forever()
"""


class Daemon:
    def __init__(self):
        self.proc = None
        self.url = None
        self.token = None
        self.log = open(os.path.join(DIR, "chaos-berth.log"), "ab")

    def start(self):
        info_path = os.path.join(DATA, "daemon.json")
        self.proc = subprocess.Popen([BERTH, "serve", "--data-dir", DATA, "--listen",
                                      "127.0.0.1:0"], stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                info = json.load(open(info_path))
                if info.get("pid") == self.proc.pid:
                    self.url = info["url"]
                    self.token = open(os.path.join(DATA, "admin.token")).read().strip()
                    return
            except (OSError, ValueError):
                pass
            if self.proc.poll() is not None:
                sys.exit(f"chaos: berth exited with {self.proc.returncode} at start")
            time.sleep(0.02)
        sys.exit("chaos: berth did not start within 60 s")

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def call(self, method, path, body=None, raw=None, timeout=30):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None
                                            else None)
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Authorization": "Bearer " + self.token})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                text = r.read()
                return r.status, (json.loads(text) if text else None)
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors="replace")


def bundle(files):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def app_definition(text, port, **env):
    return {"command": ["/usr/bin/python3", "-c", APP, text], "container-port": port,
            "auth": "public", "base-path": "strip", "min-healthy-time": 4,
            "health-check": {"rel_path": "/", "interval": 1, "status_codes": "200-299"},
            "environment": [{"name": k, "value": v} for k, v in env.items()]}


def wait_for(what, predicate, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            v = predicate()
            if v:
                return v
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    raise SystemExit(f"chaos: timed out waiting for {what}")


def live(d, name):
    code, st = d.call("GET", f"/api/v1/services/{name}/status")
    if code != 200:
        return []
    return [(i["id"], i["pid"], i.get("restarts", 0)) for i in st["instances"]
            if i["state"] == "running"]


# --- part 1: kill -9 -------------------------------------------------------------------------

class Writer(threading.Thread):
    """Creates, pushes, defines and deletes its own services; records what was acknowledged.
    After a write that got no answer its outcome is unknown: the writer leaves that service
    alone from then on (it is not checked)."""

    def __init__(self, d, n, stop):
        super().__init__(daemon=True)
        self.d, self.n, self.stop = d, n, stop
        self.acked = {}       # service -> {"exists": bool, "revisions": {rev: mark}, "tag": digest}
        self.writes = 0
        self.unanswered = 0

    def attempt(self, method, path, body=None, raw=None):
        try:
            return self.d.call(method, path, body, raw, timeout=10)
        except (OSError, urllib.error.URLError):
            return None, None

    def run(self):
        k = 0
        payload = bundle({"berth.yaml": "port: 8000\n", "data.txt": "x" * 2000})
        while not self.stop.is_set():
            k += 1
            name = f"w{self.n}s{k}"
            code, _ = self.attempt("POST", "/api/v1/services", {"name": name})
            if code != 201:
                self.unanswered += code is None
                time.sleep(0.05)
                continue
            self.writes += 1
            rec = self.acked[name] = {"exists": True, "revisions": {}, "tag": None}
            code, art = self.attempt("PUT", f"/api/v1/services/{name}/artifacts/b", raw=payload)
            if code != 201:
                self.unanswered += code is None
                continue
            self.writes += 1
            rec["tag"] = art["digest"]
            ok = True
            for r in range(3):
                mark = f"{name}-{r}"
                # A tag never pushed: stored and rolled, but nothing runs.
                code, svc = self.attempt("PUT", f"/api/v1/services/{name}", {
                    "container-tag": "latest", "memory-reservation": 1, "memory-limit": 2,
                    "container-port": 80, "environment": [{"name": "MARK", "value": mark}]})
                if code != 200:
                    self.unanswered += code is None
                    ok = False
                    break
                self.writes += 1
                rec["revisions"][svc["revision"]] = mark
            if ok and k % 3 == 0:
                code, _ = self.attempt("DELETE", f"/api/v1/services/{name}")
                if code != 200:
                    self.unanswered += code is None
                    rec["unknown"] = True  # deleted or not: either is right
                    continue
                self.writes += 1
                rec["exists"] = False


def lost_writes(d, writers):
    lost = []
    for w in writers:
        for name, rec in list(w.acked.items()):
            if rec.get("unknown"):
                continue
            code, svc = d.call("GET", f"/api/v1/services/{name}")
            if not rec["exists"]:
                if code != 404:
                    lost.append(f"{name}: deleted (acknowledged) but still there")
                continue
            if code != 200:
                lost.append(f"{name}: created (acknowledged) but {code}")
                continue
            code, revs = d.call("GET", f"/api/v1/services/{name}/revisions")
            stored = {r["revision"]: next((e["value"] for e in r["definition"]["environment"]
                                           if e["name"] == "MARK"), None)
                      for r in revs["revisions"]}
            for rev, mark in rec["revisions"].items():
                if stored.get(rev) != mark:
                    lost.append(f"{name}: revision {rev} ({mark}) acknowledged, stored "
                                f"{stored.get(rev)!r}")
            if rec["tag"]:
                code, arts = d.call("GET", f"/api/v1/services/{name}/artifacts")
                if not any(a["tag"] == "b" and a["digest"] == rec["tag"]
                           for a in arts["artifacts"]):
                    lost.append(f"{name}: artifact b acknowledged, not stored")
    return lost


def shims_alive():
    """(instance dir, shim pid) of every shim still running under the data dir."""
    out = []
    root = os.path.join(DATA, "instances")
    for inst in os.listdir(root) if os.path.isdir(root) else []:
        path = os.path.join(root, inst)
        try:
            pid = json.load(open(os.path.join(path, "shim.json")))["shim_pid"]
        except (OSError, ValueError, KeyError):
            continue
        if os.path.exists(f"/proc/{pid}") and not os.path.exists(os.path.join(path, "exit.json")):
            out.append((inst, pid))
    return out


def owned_instances(d):
    """Instances the status of some service shows (runs have ended when this is asked, so no
    step's task may be running)."""
    ids = set()
    code, projects = d.call("GET", "/api/v1/projects")
    for p in projects["projects"]:
        q = f"?project={p['name']}"
        for s in d.call("GET", "/api/v1/services" + q)[1]["services"]:
            code, st = d.call("GET", f"/api/v1/services/{s['name']}/status" + q)
            if code == 200:
                ids.update(i["id"] for i in st["instances"])
    return ids


def part_kill9(d):
    project_dir = os.path.join(DIR, "project")
    os.makedirs(project_dir, exist_ok=True)
    sentinels = {}
    for k in range(2):
        name = f"sentinel{k}"
        d.call("POST", "/api/v1/services", {"name": name})
        d.call("PUT", f"/api/v1/services/{name}", app_definition(name, 8000))
        sentinels[name] = wait_for(f"{name} to run", lambda n=name: live(d, n))
    steps = [{"name": f"s{i}", "command": "sleep 0.3", "after": [f"s{i-1}"] if i else []}
             for i in range(6)]
    code, body = d.call("POST", f"/api/v1/pipelines?project_dir={project_dir}",
                        {"name": "chain", "steps": steps})
    assert code in (200, 201), body
    stop = threading.Event()
    writers = [Writer(d, n, stop) for n in range(3)]
    for w in writers:
        w.start()
    runs_started, unfinished, spurious = [], [], []
    rng = random.Random(20261203)
    for kill in range(KILLS):
        code, run = d.call("POST", "/api/v1/pipelines/chain/runs", {})
        if code == 201:
            runs_started.append(run["uuid"])
        time.sleep(rng.uniform(0.1, 1.5))
        d.kill9()
        d.start()
        print(f"  kill {kill + 1}/{KILLS}: {sum(w.writes for w in writers)} writes "
              f"acknowledged so far", flush=True)
        for name, before in sentinels.items():
            now = live(d, name)
            if now != before:
                spurious.append(f"after kill {kill + 1}, {name}: {before} -> {now}")
                sentinels[name] = now or before
    stop.set()
    for w in writers:
        w.join(timeout=30)
    for uuid in runs_started:
        def ended(u=uuid):
            code, run = d.call("GET", f"/api/v1/runs/{u}")
            return code == 200 and run["status"] in ("SUCCESS", "FAILURE", "ABORTED")
        try:
            wait_for(f"run {uuid} to end", ended, timeout=30)
        except SystemExit:
            unfinished.append(uuid)
    lost = lost_writes(d, writers)
    # Settle: what was being deleted or stopped at the last kill drains.
    time.sleep(3)
    owned = owned_instances(d)
    orphans = [(i, pid) for i, pid in shims_alive() if i not in owned]
    uploads = os.path.join(DATA, "uploads")
    leftovers = os.listdir(uploads) if os.path.isdir(uploads) else []
    leftovers += [i for i in os.listdir(os.path.join(DATA, "instances"))
                  if not os.path.exists(os.path.join(DATA, "instances", i, "meta.json"))]
    acked = sum(w.writes for w in writers)
    print(f"kill -9: {KILLS} kills, {acked} acknowledged writes, "
          f"{sum(w.unanswered for w in writers)} unanswered (outcome unknown, not counted), "
          f"{len(runs_started)} pipeline runs")
    print(f"  lost writes:        {len(lost)}   (target 0)")
    print(f"  spurious restarts:  {len(spurious)}   (target 0)")
    print(f"  runs left unfinished: {len(unfinished)}   (target 0)")
    print(f"  orphans:            {len(orphans)}   (target 0)")
    print(f"  leftovers:          {len(leftovers)}   (target 0)")
    for line in (lost + spurious + unfinished + [str(o) for o in orphans] + leftovers)[:20]:
        print("   ", line)
    return not (lost or spurious or unfinished or orphans or leftovers)


# --- part 2: rolling updates under load -----------------------------------------------------

class Load(threading.Thread):
    """Calls the service through the gateway without pause; counts answers by outcome."""

    def __init__(self, url):
        super().__init__(daemon=True)
        self.url, self.ok, self.failed, self.bodies, self.errors = url, 0, 0, {}, {}
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.is_set():
            try:
                with urllib.request.urlopen(self.url, timeout=5) as r:
                    body = r.read().decode()
                    self.ok += 1
                    self.bodies[body] = self.bodies.get(body, 0) + 1
            except urllib.error.HTTPError as e:
                self.failed += 1
                why = f"HTTP {e.code}: {e.read().decode(errors='replace')[:160]}"
                self.errors[why] = self.errors.get(why, 0) + 1
            except (OSError, urllib.error.URLError) as e:
                self.failed += 1
                self.errors[str(e)] = self.errors.get(str(e), 0) + 1

    def take(self):
        out = (self.ok, self.failed, dict(self.bodies), dict(self.errors))
        self.ok, self.failed, self.bodies, self.errors = 0, 0, {}, {}
        return out


def part_updates(d):
    d.call("POST", "/api/v1/services", {"name": "rolling"})
    d.call("PUT", "/api/v1/services/rolling", app_definition("v1", 8000))
    wait_for("rolling v1 to run", lambda: live(d, "rolling"))
    load = Load(d.url + "/default-rolling/")
    load.start()
    time.sleep(1)
    load.take()
    cases = [("good", app_definition("v2", 8000), True),
             ("exits at once", app_definition("bad-exit", 8000, EXIT_AT_ONCE="1"), False),
             ("never healthy", app_definition("bad-sick", 8000, SICK="1"), False),
             ("crashes 2 s after going live", app_definition("bad-crash", 8000, DIE_AFTER="2"),
              False)]
    ok_all = True
    serving = "v1"
    print("rolling updates under load (one client without pause through the gateway):")
    for label, definition, good in cases:
        code, svc = d.call("PUT", "/api/v1/services/rolling", definition)
        rev = svc["revision"]

        def settled():
            code, st = d.call("GET", "/api/v1/services/rolling/status")
            if good:
                return st["active_revision"] == rev and len(live(d, "rolling")) == 1 and \
                    any(e["kind"] == "settled" for e in st["events"])
            return st.get("failed_revision") == rev
        wait_for(f"the {label} revision to settle", settled, timeout=90)
        time.sleep(1)
        n_ok, n_failed, bodies, errors = load.take()
        text = "v2" if good else serving
        still = bodies.get(serving if not good else text, 0)
        verdict = (n_failed == 0 if good else still > 0)
        code, st = d.call("GET", "/api/v1/services/rolling/status")
        if good:
            serving = "v2"
        print(f"  {label:30s} {n_ok:6d} ok, {n_failed:4d} failed; answers {bodies}; "
              f"{'rolled back, ' if not good else ''}active revision {st['active_revision']}"
              f"  {'ok' if verdict else 'MISSED'}")
        for why, n in sorted(errors.items(), key=lambda e: -e[1]):
            print(f"      {n:4d} x {why}")
        ok_all = ok_all and verdict
    load.stopping.set()
    load.join(timeout=10)
    return ok_all


def main():
    d = Daemon()
    d.start()
    ok1 = part_kill9(d)
    ok2 = part_updates(d)
    print("chaos: " + ("every target met" if ok1 and ok2 else "TARGETS MISSED"))
    # bench/chaos.sh deletes the services and stops the daemon through its API.
    return 0 if ok1 and ok2 else 1


if __name__ == "__main__":
    sys.exit(main())
