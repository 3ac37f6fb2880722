"""berth's runtime end to end: bundles pushed through the API run as supervised instances.

Each test starts real programs (small Python servers, `python3` from PATH) through a real
`berth serve`, and checks what a user would see: the program answers on its instance address,
status/events/logs tell the truth, crashes are restarted with backoff, memory limits are
enforced, bad archives are refused, rollouts never leave the service without a ready instance
and roll back by themselves, and instances survive a daemon that is killed.

Everything polls with a deadline; no fixed sleep decides a result. Instances outlive the daemon
by design, so every test's services are deleted afterwards and any process left over is killed.

Run with Debian's interpreter:
    BERTH_BIN=build/src/berth/berth /usr/bin/python3 -m pytest -q tests/integration/test_runtime.py
"""
import gzip
import io
import itertools
import json
import os
import re
import signal
import socket
import subprocess
import tarfile
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest
import requests

from conftest import BERTH_BIN, assert_native_error, clean_env, unique, wait_until

# Live instance states; exited ones are "exited", "oom-killed" or "crash-looping".
LIVE_STATES = {"starting", "running", "unhealthy", "stopping"}

# Each service gets its own container port, so that instances of different daemons (which all
# allocate addresses from 127.1.0.1 upwards) can never collide.
_ports = itertools.count(21000 + (os.getpid() % 500) * 20)


def next_port():
    return next(_ports)


# A small server: answers every GET with its first argument (default "ok") and the current
# value of a counter in X-Count. With TICK set, prints "tick N" every TICK seconds. After a
# GET of /sick it answers everything with 503.
APP = r"""
import http.server, os, sys, threading, time
text = sys.argv[1] if len(sys.argv) > 1 else "ok"
tick = float(os.environ.get("TICK", "0"))
state = {"n": 0, "sick": False}
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/sick":
            state["sick"] = True
        body = text.encode()
        self.send_response(503 if state["sick"] else 200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Count", str(state["n"]))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
srv = http.server.ThreadingHTTPServer((os.environ["HOST"], int(os.environ["PORT"])), H)
if float(os.environ.get("DIE_AFTER", "0")):  # a revision that crashes once it is live
    threading.Timer(float(os.environ["DIE_AFTER"]), lambda: os._exit(3)).start()
if tick:
    def loop():
        while True:
            state["n"] += 1
            print("tick %d" % state["n"], flush=True)
            time.sleep(tick)
    threading.Thread(target=loop, daemon=True).start()
print("serving %s on %s:%s" % (text, os.environ["HOST"], os.environ["PORT"]), flush=True)
srv.serve_forever()
"""

# Serves the files of its working directory.
FILES_APP = r"""
import functools, http.server, os
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=os.getcwd())
http.server.ThreadingHTTPServer((os.environ["HOST"], int(os.environ["PORT"])), handler).serve_forever()
"""

# Serves its whole environment as JSON.
ENV_SERVER = r"""
import http.server, json, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps(dict(os.environ)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer((os.environ["HOST"], int(os.environ["PORT"])), H).serve_forever()
"""


def app_command(text="ok"):
    return ["python3", "-c", APP, text]


# --- processes ------------------------------------------------------------------------------

def pid_alive(pid):
    """True if `pid` exists and is not a zombie (shims are reparented and may linger as such)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def instance_records(data_dir):
    """{instance id: (meta, shim)} for every instance directory under the data dir."""
    out = {}
    for d in sorted((Path(data_dir) / "instances").glob("i-*")):
        try:
            meta = json.loads((d / "meta.json").read_text())
        except (FileNotFoundError, ValueError):
            meta = {}
        try:
            shim = json.loads((d / "shim.json").read_text())
        except (FileNotFoundError, ValueError):
            shim = {}
        out[d.name] = (meta, shim)
    return out


def instance_pids(data_dir):
    pids = set()
    for meta, shim in instance_records(data_dir).values():
        for key in ("shim_pid", "pid"):
            if shim.get(key):
                pids.add(shim[key])
    return pids


def kill_leftovers(pids):
    for pid in pids:
        if pid_alive(pid):
            for f in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
                try:
                    f()
                except (ProcessLookupError, PermissionError):
                    pass


@pytest.fixture
def track(daemon_factory):
    """track(daemon, name): the service is deleted after the test and its processes reaped.

    Depends on daemon_factory so that it is torn down first, while the daemons still run."""
    entries = []
    yield lambda d, name: entries.append((d, name))
    data_dirs = {d.data_dir for d, _ in entries}
    pids = set()
    for dd in data_dirs:
        pids |= instance_pids(dd)
    for d, name in entries:
        if d.running():
            try:
                d.delete(f"/api/v1/services/{name}")
            except requests.RequestException:
                pass
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
        time.sleep(0.05)
    left = [p for p in pids if pid_alive(p)]
    kill_leftovers(left)
    # Instances started after the snapshot (a restart racing the delete).
    for dd in data_dirs:
        kill_leftovers([p for p in instance_pids(dd) if pid_alive(p)])
    assert not left, f"processes still alive 15 s after their services were deleted: {left}"


# --- API helpers ----------------------------------------------------------------------------

def tarball(files, gz=True):
    """A bundle from {"path": str|bytes}."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if gz else "w") as tf:
        for name, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = int(time.time())
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class Service:
    def __init__(self, d, name):
        self.d = d
        self.name = name

    @property
    def path(self):
        return f"/api/v1/services/{self.name}"

    def push(self, tag, body, expect=201):
        r = self.d.put(f"{self.path}/artifacts/{tag}", data=body,
                       headers={"Content-Type": "application/octet-stream"})
        assert r.status_code == expect, f"push {tag}: {r.status_code} {r.text}"
        return r.json()

    def define(self, definition, expect=200):
        r = self.d.put(self.path, json=definition)
        assert r.status_code == expect, f"PUT {self.path}: {r.status_code} {r.text}"
        return r

    def status(self):
        r = self.d.get(f"{self.path}/status")
        assert r.status_code == 200, r.text
        return r.json()

    def events(self, kind=None, st=None):
        evs = (st or self.status())["events"]
        return [e for e in evs if kind is None or e["kind"] == kind]

    def wait(self, predicate, timeout, what, interval=0.02):
        """Polls status until predicate(status) is truthy and returns that status (or the
        predicate's value when it is an object); the failure shows the last status."""
        last = {}

        def check():
            last["st"] = self.status()
            return predicate(last["st"])

        try:
            value = wait_until(check, timeout, what, interval)
            # A plain truth value is not interesting; the status that satisfied it is.
            return last["st"] if value is True or isinstance(value, list) else value
        except AssertionError as e:
            raise AssertionError(f"{e}\nlast status: {json.dumps(last.get('st'), indent=1)}")

    def wait_running(self, timeout=10, revision=None):
        """Waits for a ready instance (of `revision` if given); returns it."""
        def ready(st):
            for i in st["instances"]:
                if i["state"] == "running" and (revision is None or i["revision"] == revision):
                    return i
            return None
        return self.wait(ready, timeout, f"a running instance of {self.name}")

    def logs(self, **query):
        r = self.d.get(f"{self.path}/logs", params=query)
        assert r.status_code == 200, r.text
        return r.json()["lines"]


@pytest.fixture
def new_service(daemon, track):
    """new_service(prefix="s", d=None): creates a service (admin token: project "default")."""
    def make(prefix="s", d=None):
        d = d or daemon
        name = unique(prefix)
        r = d.post("/api/v1/services", json={"name": name})
        assert r.status_code == 201, r.text
        track(d, name)
        return Service(d, name)
    return make


def get(host, port, path="/", timeout=2.0):
    return requests.get(f"http://{host}:{port}{path}", timeout=timeout)


def answers(host, port, path="/"):
    try:
        return get(host, port, path, timeout=1.0)
    except requests.RequestException:
        return None


def live(st):
    return [i for i in st["instances"] if i["state"] in LIVE_STATES]


def restart_delays(st):
    """The "restarting in N ms" delays of exit events, oldest first."""
    out = []
    for e in reversed(st["events"]):
        m = re.search(r"restarting in (\d+) ms", e["message"])
        if e["kind"] in ("exited", "oom-killed") and m:
            out.append(int(m.group(1)))
    return out


# --- 1. deploy and environment --------------------------------------------------------------

def test_pushed_bundle_serves_quickly_with_its_environment(daemon, new_service):
    svc = new_service("web")
    port = next_port()
    bundle = tarball({
        "berth.yaml": f'command: ["python3", "server.py"]\nport: {port}\n'
                      'env:\n  FROM_BUNDLE: bundle-value\n',
        "server.py": ENV_SERVER,
    })
    pushed = svc.push("v1", bundle)
    assert pushed["tag"] == "v1" and pushed["digest"].startswith("sha256:"), pushed
    assert pushed["size"] == len(bundle), pushed

    t0 = time.monotonic()
    svc.define({"container-tag": "v1",
                "environment": [{"name": "GREETING", "value": "hello from the definition"}]})

    def served():
        st = svc.status()
        for i in live(st):
            r = answers(i["host"], i["port"])
            if r is not None and r.status_code == 200:
                return i, r
        return None
    inst, r = wait_until(served, 10, "the instance to answer on its address", interval=0.005)
    elapsed = time.monotonic() - t0
    print(f"\ninstance answered {elapsed * 1000:.0f} ms after the PUT")
    assert elapsed < 1.0, f"took {elapsed:.2f}s from PUT to first answer"

    assert re.fullmatch(r"127\.\d+\.\d+\.\d+", inst["host"]), inst
    assert inst["port"] == port, inst
    assert inst["host"] != "127.0.0.1", inst
    env = r.json()
    assert env["HOST"] == inst["host"]
    assert env["PORT"] == str(port)
    assert env["CONTEXT_ROOT"] == f"/default-{svc.name}"
    assert env["BERTH_URL"] == daemon.url
    assert env["BERTH_SERVICE"] == svc.name
    assert env["BERTH_VERSION"] == "1"
    assert env["BERTH_PROJECT"] == "default"
    assert env["BERTH_INSTANCE"] == inst["id"]
    assert env["GREETING"] == "hello from the definition"
    assert env["FROM_BUNDLE"] == "bundle-value"
    # The instance's token works against the API, confined to its project.
    who = requests.get(env["BERTH_URL"] + "/api/v1/whoami",
                       headers={"Authorization": "Bearer " + env["BERTH_TOKEN"]}, timeout=10)
    assert who.status_code == 200, who.text
    assert who.json()["project"] == "default", who.json()
    assert who.json()["admin"] is False, who.json()
    # The daemon's own secrets are not handed down.
    assert env["BERTH_TOKEN"] != daemon.admin_token

    st = svc.wait(lambda s: s["running"] == 1, 5, "status running == 1")
    assert st["active_revision"] == 1 and st["revision"] == 1, st
    assert inst["pid"] > 0 and pid_alive(inst["pid"]), inst
    assert svc.events("started", st) and svc.events("ready", st), st["events"]
    # The list says as much, for every service at once.
    listed = {s["name"]: s for s in daemon.get("/api/v1/services").json()["services"]}
    assert listed[st["name"]]["running"] == 1 and listed[st["name"]]["desired"] == 1, listed

    # A yes/no parameter that is neither is an error, not a guess.
    assert_native_error(daemon.get(svc.path + "/logs", params={"follow": "maybe"}), 400,
                        "invalid_argument", contains='follow="maybe": must be true or false')

    # Deleted, the service's token stops working at once, not at the daemon's next start.
    assert svc.d.delete(svc.path).status_code in (200, 204)
    who = requests.get(env["BERTH_URL"] + "/api/v1/whoami",
                       headers={"Authorization": "Bearer " + env["BERTH_TOKEN"]}, timeout=10)
    assert who.status_code == 401, who.text
    assert "revoked" in who.text, who.text


# --- 2. crashes, restarts, backoff, crash-looping -------------------------------------------

def test_killed_instance_is_restarted_and_counted(new_service):
    svc = new_service("crash")
    port = next_port()
    svc.define({"command": app_command(), "container-port": port, "base-path": "strip"})
    first = svc.wait_running()
    assert first["restarts"] == 0, first
    os.kill(first["pid"], signal.SIGKILL)

    def replaced(st):
        for i in st["instances"]:
            if i["state"] == "running" and i["id"] != first["id"]:
                return i
        return None
    second = svc.wait(replaced, 10, "a new running instance after kill -9")
    st = svc.status()
    assert second["restarts"] >= 1, second
    assert second["pid"] != first["pid"]
    assert not pid_alive(first["pid"])
    old = [i for i in st["instances"] if i["id"] == first["id"]]
    assert old and old[0]["state"] == "exited" and old[0]["signal"] == 9, old
    exited = svc.events("exited", st)
    assert exited, st["events"]
    assert first["id"] in exited[0]["message"] and "signal 9" in exited[0]["message"], exited
    r = get(second["host"], second["port"])
    assert r.status_code == 200 and r.text == "ok"


def test_always_failing_program_backs_off_then_crash_loops(new_service):
    svc = new_service("loop")
    svc.define({"command": ["python3", "-c", "import sys; print('dying'); sys.exit(1)"],
                "container-port": next_port(), "base-path": "strip"})
    st = svc.wait(lambda s: svc.events("crash-looping", s), 30, "a crash-looping event",
                  interval=0.1)
    delays = restart_delays(st)
    assert len(delays) >= 5, st["events"]
    assert delays[:5] == [250, 500, 1000, 2000, 4000], delays
    assert all(b > a for a, b in zip(delays, delays[1:])), delays
    ev = svc.events("crash-looping", st)[0]
    assert "5 times in a row" in ev["message"], ev
    assert any(i["state"] == "crash-looping" for i in st["instances"]), st["instances"]
    assert all(i["exit_code"] == 1 for i in st["instances"] if i["state"] != "starting"), st
    assert st["running"] == 0, st
    assert any("exited with code 1" in e["message"] for e in svc.events("exited", st))
    # The program's output and the exit are in its logs.
    msgs = [l["message"] for l in svc.logs(tail=50)]
    assert "dying" in msgs, msgs


def test_unhealthy_instance_is_replaced(new_service):
    svc = new_service("sick")
    svc.define({"command": app_command(), "container-port": next_port(), "base-path": "strip",
                "health-check": {"rel_path": "/", "status_codes": "200-299", "interval": 1,
                                 "timeout": 1}})
    first = svc.wait_running()
    assert get(first["host"], first["port"], "/sick").status_code == 503

    def replaced(st):
        for i in st["instances"]:
            if i["state"] == "running" and i["id"] != first["id"]:
                return i
        return None
    second = svc.wait(replaced, 15, "a healthy replacement", interval=0.05)
    assert second["restarts"] >= 1, second
    assert get(second["host"], second["port"]).status_code == 200
    st = svc.status()
    unhealthy = svc.events("unhealthy", st)
    assert unhealthy and first["id"] in unhealthy[0]["message"], st["events"]
    assert "503" in unhealthy[0]["message"], unhealthy
    assert any(first["id"] in e["message"] and "unhealthy" in e["message"]
               for e in svc.events("stopping", st)), st["events"]
    wait_until(lambda: not pid_alive(first["pid"]), 15, "the unhealthy instance to exit")


# --- 3. memory limit ------------------------------------------------------------------------

MEMORY_HOG = r"""
import time
hog = []
for _ in range(200):
    hog.append(bytearray(10 << 20))   # 10 MB, touched: bytearray zero-fills
    time.sleep(0.005)
print("allocated 2 GB without being stopped", flush=True)
time.sleep(60)
"""


def test_memory_limit_kills_the_hog_and_not_its_neighbour(new_service):
    if os.geteuid() != 0:
        pytest.skip("memory limits need cgroups, which need root")
    neighbour = new_service("calm")
    neighbour.define({"command": app_command("calm"), "container-port": next_port(),
                      "base-path": "strip"})
    calm = neighbour.wait_running()

    hog = new_service("hog")
    hog.define({"command": ["python3", "-c", MEMORY_HOG], "memory-limit": 50,
                "container-port": next_port(), "health-check": {"type": "tcp"}})

    def oom(st):
        # The neighbour must keep answering all along.
        r = get(calm["host"], calm["port"])
        assert r.status_code == 200 and r.text == "calm", r
        return any(i["state"] == "oom-killed" for i in st["instances"]) and \
            hog.events("oom-killed", st)
    st = hog.wait(oom, 20, "an oom-killed instance and event", interval=0.05)
    ev = hog.events("oom-killed", st)[0]
    assert "memory limit" in ev["message"] and "restarting in" in ev["message"], ev
    killed = [i for i in st["instances"] if i["state"] == "oom-killed"][0]
    assert killed["signal"] == 9, killed
    msgs = [l["message"] for l in hog.logs(tail=100)]
    assert not any("without being stopped" in m for m in msgs), msgs
    nst = neighbour.status()
    same = [i for i in nst["instances"] if i["id"] == calm["id"]]
    assert same and same[0]["state"] == "running" and same[0]["pid"] == calm["pid"], nst
    assert same[0]["restarts"] == 0
    assert not neighbour.events("exited", nst) and not neighbour.events("oom-killed", nst)


# --- 4. hostile archives --------------------------------------------------------------------

def _tar_with(infos, gz=True):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if gz else "w", format=tarfile.GNU_FORMAT) as tf:
        ok = tarfile.TarInfo("berth.yaml")
        data = b'command: ["true"]\n'
        ok.size = len(data)
        tf.addfile(ok, io.BytesIO(data))
        for info, data in infos:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _file(name, data=b"evil\n"):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    return info, data


def _symlink(name, target):
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    return info, None


def _hardlink(name, target):
    info = tarfile.TarInfo(name)
    info.type = tarfile.LNKTYPE
    info.linkname = target
    return info, None


def _device(name):
    info = tarfile.TarInfo(name)
    info.type = tarfile.CHRTYPE
    info.devmajor, info.devminor = 1, 3
    info.mode = 0o666
    return info, None


class _Zeros(io.RawIOBase):
    def __init__(self, n):
        self.left = n

    def readable(self):
        return True

    def readinto(self, b):
        n = min(len(b), self.left)
        b[:n] = bytes(n)
        self.left -= n
        return n


def _gzip_bomb(name, size=300 << 20):
    raw = io.BytesIO()
    with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6) as gz:
        with tarfile.open(fileobj=gz, mode="w|", format=tarfile.GNU_FORMAT) as tf:
            info = tarfile.TarInfo(name)
            info.size = size
            tf.addfile(info, _Zeros(size))
    return raw.getvalue()


def _store_files(data_dir):
    root = Path(data_dir) / "artifacts"
    out = set()
    for sub in ("blobs", "unpacked", "ingested", "tmp"):
        if (root / sub).exists():
            out |= {str(p.relative_to(root)) for p in (root / sub).rglob("*")}
    return out


HOSTILE = [
    ("absolute path", lambda: _tar_with([_file("/tmp/berth-abs-evil.txt")]), "berth-abs-evil.txt"),
    ("dot-dot", lambda: _tar_with([_file("sub/../../dotdot-evil.txt")]), "dotdot-evil.txt"),
    ("symlink escaping", lambda: _tar_with([_symlink("escape-link", "../../../../etc/passwd")]),
     "escape-link"),
    ("absolute symlink", lambda: _tar_with([_symlink("abs-link", "/etc/passwd")]), "abs-link"),
    ("write through symlink", lambda: _tar_with([_symlink("out", ".."), _file("out/thru.txt")]),
     "out"),
    ("hard link escaping", lambda: _tar_with([_hardlink("hard-evil", "../../../etc/passwd")]),
     "hard-evil"),
    ("device file", lambda: _tar_with([_device("dev-null")]), "dev-null"),
    ("gzip bomb", lambda: _gzip_bomb("zeros.bin"), "zeros.bin"),
]


# What a spy of another project tries, run at start-up; its answer says what worked.
SPY = r"""
import glob, http.server, json, os, sys
data = sys.argv[1]
tried = {}
def attempt(name, f):
    try:
        tried[name] = ("read", f())
    except (OSError, IndexError) as e:  # IndexError: nothing of the kind is visible
        tried[name] = ("refused", type(e).__name__)
attempt("admin token", lambda: open(data + "/admin.token").read())
attempt("instance dirs", lambda: os.listdir(data + "/instances"))
attempt("other project's data", lambda: open(data + "/projects/default/data/secret.txt").read())
attempt("victim's environ", lambda: open("/proc/%s/environ" % sys.argv[2], "rb").read().decode())
attempt("victim's spec", lambda: open(glob.glob(data + "/instances/*/spec.json")[0]).read())
attempt("store", lambda: open(glob.glob(data + "/*.db")[0], "rb").read(16).decode("latin1"))
with open(os.environ["BERTH_DATA"] + "/mine.txt", "w") as f:
    f.write("mine")
with open("/tmp/scratch", "w") as f:
    f.write("t")
answer = json.dumps({"uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(),
                     "caps": [l for l in open("/proc/self/status") if l.startswith("Cap")],
                     "tried": tried}).encode()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)
    def log_message(self, *a):
        pass
http.server.HTTPServer((os.environ["HOST"], int(os.environ["PORT"])), H).serve_forever()
"""


class AsToken:
    """The daemon's native API with another token."""
    def __init__(self, d, token):
        self.d, self.token = d, token

    def request(self, method, path, **kw):
        return self.d.request(method, path, token=self.token, **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def put(self, path, **kw):
        return self.request("PUT", path, **kw)


# Decision 9: a service of one project cannot read another project's files, instance specs
# (env secrets), environment, the store or the admin token; it runs as its project's user,
# without capabilities, and still writes its own /data and a private /tmp.
@pytest.mark.skipif(os.geteuid() != 0, reason="confinement needs a daemon running as root")
def test_a_service_cannot_read_another_projects_secrets(daemon, new_service, track):
    victim = new_service("victim")
    victim.push("v1", tarball({"berth.yaml": f'command: ["python3", "app.py"]\nport: {next_port()}\n',
                               "app.py": APP}))
    victim.define({"container-tag": "v1",
                   "environment": [{"name": "VICTIM_SECRET", "value": "s3cr3t-env"}]})
    vi = victim.wait_running(20)
    data = Path(daemon.data_dir)
    (data / "projects/default/data/secret.txt").write_text("s3cr3t-file")

    from conftest import project_with_token
    other, token = project_with_token(daemon)
    spy_api = AsToken(daemon, token)
    name = unique("spy")
    r = spy_api.request("POST", "/api/v1/services", json={"name": name})
    assert r.status_code == 201, r.text
    track(daemon, f"{name}?project={other}")
    spy = Service(spy_api, name)
    spy.push("v1", tarball({
        "berth.yaml": f'command: ["python3", "spy.py", "{data}", "{vi["pid"]}"]\n'
                      f'port: {next_port()}\n',
        "spy.py": SPY}))
    spy.define({"container-tag": "v1"})
    si = spy.wait_running(20)
    seen = get(si["host"], si["port"], timeout=5).json()
    assert seen["uid"] >= 2000000000 and seen["uid"] == seen["gid"], seen
    assert seen["groups"] == [], seen
    assert all(line.split()[1] == "0000000000000000" for line in seen["caps"]), seen["caps"]
    for what, (outcome, detail) in seen["tried"].items():
        assert outcome == "refused", f"the spy could read {what}: {detail!r}"
    assert "s3cr3t" not in json.dumps(seen)
    own = data / f"projects/{other}/data/mine.txt"
    assert own.read_text() == "mine" and own.stat().st_uid == seen["uid"]
    assert not Path("/tmp/scratch").exists() or Path("/tmp/scratch").stat().st_uid != seen["uid"]
    # The pid berth reports is the program itself, running as the project's user.
    assert os.stat(f"/proc/{si['pid']}").st_uid == seen["uid"]
    assert "spy.py" in Path(f"/proc/{si['pid']}/cmdline").read_text()


@pytest.mark.skipif(os.geteuid() != 0, reason="confinement needs a daemon running as root")
def test_a_confined_service_writes_into_its_bundle_without_changing_it(daemon, new_service):
    """What programs do on start (render a config beside their code, make a cache dir) works
    as in a container: the writes are the instance's own, the pushed bundle stays as it was."""
    svc = new_service("writer")
    svc.push("v1", tarball({
        "berth.yaml": 'command: ["sh", "-c", "sed s/x/rendered/ conf.in > conf.txt && '
                      'mkdir -p cache && exec python3 app.py"]\n'
                      f'port: {next_port()}\n',
        "conf.in": "x\n", "app.py": FILES_APP}))
    svc.define({"container-tag": "v1"})
    inst = svc.wait_running(20)
    assert get(inst["host"], inst["port"], "/conf.txt", timeout=5).text == "rendered\n"
    unpacked = list((Path(daemon.data_dir) / "artifacts").rglob("conf.in"))
    assert unpacked, "the bundle is not in the artifact store"
    for conf in unpacked:
        assert not (conf.parent / "conf.txt").exists(), "the shared bundle was written"
        assert not (conf.parent / "cache").exists()


def test_a_bundles_build_runs_with_a_clean_environment_and_a_timeout(daemon_factory,
                                                                      new_service):
    """The build runs once at push time in the bundle's directory: as the project's user when
    the daemon confines, never with the daemon's environment (its SMTP password), killed after
    --build-timeout; a failed build refuses the push with the end of its output."""
    d = daemon_factory(extra_args=["--build-timeout", "3"],
                       env={"BERTH_SMTP_PASSWORD": "hunter2-smtp"})
    svc = new_service("builder", d=d)
    svc.push("v1", tarball({
        "berth.yaml": 'build: "env > build-env.txt; id -u > build-uid.txt; echo built"\n'
                      'command: ["python3", "app.py"]\n'
                      f'port: {next_port()}\n',
        "app.py": FILES_APP}))
    svc.define({"container-tag": "v1"})
    inst = svc.wait_running(20)
    env = get(inst["host"], inst["port"], "/build-env.txt", timeout=5).text
    assert "hunter2" not in env and "BERTH_SMTP" not in env, env
    assert "BERTH_PROJECT=default" in env, env
    uid = int(get(inst["host"], inst["port"], "/build-uid.txt", timeout=5).text)
    if os.geteuid() == 0:
        assert uid >= 2000000000, f"the build ran as uid {uid}, not the project's user"
    # A failing build: 400 with its output; a build that hangs: killed after 3 s.
    r = svc.d.put(f"{svc.path}/artifacts/v2", data=tarball({
        "berth.yaml": 'build: "echo compiling; echo oops >&2; exit 3"\ncommand: [true]\n'}),
        headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 400, r.text
    assert "exit code 3" in r.text and "oops" in r.text, r.text
    started = time.monotonic()
    r = svc.d.put(f"{svc.path}/artifacts/v3", data=tarball({
        "berth.yaml": 'build: "sleep 60 & sleep 60"\ncommand: [true]\n'}),
        headers={"Content-Type": "application/octet-stream"}, timeout=60)
    took = time.monotonic() - started
    assert r.status_code == 400 and "longer than 3 s" in r.text, r.text
    assert took < 30, f"the push waited {took:.0f} s"
    assert [a["tag"] for a in svc.d.get(f"{svc.path}/artifacts").json()["artifacts"]] == ["v1"]


def test_builds_under_way_do_not_hold_up_other_changes(daemon_factory, new_service):
    """Two pushes whose builds wait for the test's word: while both are building, creates and
    definitions of other services are answered (before, each build held one of the two
    threads changes run on); then the builds finish and both pushes succeed."""
    d = daemon_factory(extra_args=["--build-timeout", "120"])
    svc = new_service("slowbuild", d=d)
    results = {}

    def push(tag):
        results[tag] = svc.d.put(f"{svc.path}/artifacts/{tag}", data=tarball({
            "berth.yaml": 'build: "while [ ! -e release ]; do sleep 0.05; done; echo built"\n'
                          'command: [true]\n',
            f"marker-{tag}.txt": tag}), headers={"Content-Type": "application/octet-stream"},
            timeout=120)
    pushes = [threading.Thread(target=push, args=(tag,)) for tag in ("b1", "b2")]
    for t in pushes:
        t.start()
    artifacts = Path(d.data_dir) / "artifacts"

    def building():
        found = {m.parent for m in artifacts.rglob("marker-*.txt")}
        return found if len(found) == 2 else None
    try:
        wait_until(building, 30, "both builds to start")
        for k in range(3):
            other = new_service(f"meanwhile{k}", d=d)
            other.define({"command": ["sleep", "60"], "replicas": 0,
                          "container-port": next_port()})
        assert not results, f"a push ended before its build was released: {results}"
    finally:  # where the builds run (an unpacked bundle is moved into place whole)
        for bundle in {m.parent for m in artifacts.rglob("marker-*.txt")}:
            (bundle / "release").touch()
        for t in pushes:
            t.join(timeout=120)
    assert {tag: r.status_code for tag, r in results.items()} == {"b1": 201, "b2": 201}, \
        {tag: r.text for tag, r in results.items()}


def test_a_push_with_progress_streams_its_builds_output_as_it_comes(daemon_factory,
                                                                   new_service):
    """`?progress=1`: the build's lines arrive while it runs (the first before the test lets
    it go on), then the artifact; a failing build ends the stream with its error."""
    d = daemon_factory(extra_args=["--build-timeout", "120"])
    svc = new_service("watched", d=d)
    r = svc.d.put(f"{svc.path}/artifacts/v1?progress=1", data=tarball({
        "berth.yaml": 'build: "echo compiling; while [ ! -e release ]; do sleep 0.05; done; '
                      'echo linking >&2"\ncommand: [true]\n',
        "marker-watched.txt": "x"}), headers={"Content-Type": "application/octet-stream"},
        stream=True, timeout=120)
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/x-ndjson", r.text
    lines = r.iter_lines()
    assert json.loads(next(lines)) == {"build": "compiling"}
    for marker in (Path(d.data_dir) / "artifacts").rglob("marker-watched.txt"):
        (marker.parent / "release").touch()
    rest = [json.loads(line) for line in lines]
    assert rest[0] == {"build": "linking"}, rest
    assert rest[-1]["artifact"]["tag"] == "v1" and len(rest) == 2, rest
    assert [a["tag"] for a in svc.d.get(f"{svc.path}/artifacts").json()["artifacts"]] == ["v1"]
    r = svc.d.put(f"{svc.path}/artifacts/v2?progress=1", data=tarball({
        "berth.yaml": 'build: "echo trying; exit 4"\ncommand: [true]\n'}),
        headers={"Content-Type": "application/octet-stream"}, timeout=60)
    answer = [json.loads(line) for line in r.text.splitlines()]
    assert answer[0] == {"build": "trying"}, answer
    assert answer[-1]["error"]["code"] == "invalid_argument", answer
    assert "exit code 4" in answer[-1]["error"]["message"], answer
    r = svc.d.put(f"{svc.path}/artifacts/v3?progress=maybe", data=b"x",
                  headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 400 and "progress" in r.text, r.text
    assert [a["tag"] for a in svc.d.get(f"{svc.path}/artifacts").json()["artifacts"]] == ["v1"]


def test_hostile_archives_are_refused_and_leave_nothing(daemon, new_service):
    svc = new_service("hostile")
    before = _store_files(daemon.data_dir)
    uploads_before = set(os.listdir(daemon.data_dir / "uploads"))
    for what, build, entry in HOSTILE:
        body = build()
        if what == "gzip bomb":
            assert len(body) < 2 << 20, len(body)  # small upload, huge content
        t0 = time.monotonic()
        r = svc.d.put(f"{svc.path}/artifacts/bad", data=body,
                      headers={"Content-Type": "application/octet-stream"})
        msg = assert_native_error(r, 400)
        print(f"\n{what}: {msg}")
        assert entry in msg, f"{what}: message does not name the entry '{entry}': {msg}"
        if what == "gzip bomb":
            # Refused early, not after writing 300 MB.
            assert time.monotonic() - t0 < 10, "the bomb took too long to refuse"
    assert not Path("/tmp/berth-abs-evil.txt").exists()
    r = svc.d.get(f"{svc.path}/artifacts")
    assert r.status_code == 200 and r.json() == {"artifacts": []}, r.text
    assert _store_files(daemon.data_dir) == before, \
        sorted(_store_files(daemon.data_dir) - before)
    assert set(os.listdir(daemon.data_dir / "uploads")) == uploads_before
    for base in (daemon.data_dir, daemon.data_dir / "artifacts",
                 daemon.data_dir / "artifacts" / "unpacked"):
        for name in ("dotdot-evil.txt", "thru.txt"):
            assert not (base / name).exists(), base / name
    # The same service still takes a good bundle afterwards.
    svc.push("good", tarball({"berth.yaml": 'command: ["true"]\n'}))


# --- 5. rolling update and automatic rollback -----------------------------------------------

def test_rolling_update_keeps_a_ready_instance_and_rolls_back_a_broken_revision(new_service):
    svc = new_service("roll")
    port = next_port()
    base = {"container-port": port, "base-path": "strip"}
    svc.define({**base, "command": app_command("v1")})
    v1 = svc.wait_running(revision=1)
    assert get(v1["host"], v1["port"]).text == "v1"
    svc.wait(lambda s: s["active_revision"] == 1, 5, "revision 1 live")

    svc.define({**base, "command": app_command("v2")})
    observations = 0
    deadline = time.monotonic() + 20
    while True:
        st = svc.status()
        observations += 1
        ready = [i for i in st["instances"] if i["state"] == "running"]
        assert ready and st["running"] >= 1, \
            f"observation {observations}: no ready instance during the rollout: {st}"
        assert ready[0]["revision"] in (1, 2)
        only_v2 = all(i["revision"] == 2 for i in live(st))
        if st["active_revision"] == 2 and only_v2 and st["running"] == 1:
            break
        assert time.monotonic() < deadline, f"rollout to revision 2 did not finish: {st}"
        time.sleep(0.02)
    print(f"\n{observations} status observations during the rollout")
    v2 = [i for i in st["instances"] if i["state"] == "running"][0]
    assert v2["revision"] == 2 and v2["id"] != v1["id"]
    assert get(v2["host"], v2["port"]).text == "v2"
    wait_until(lambda: not pid_alive(v1["pid"]), 15, "the revision 1 process to exit")
    # Logs can be read per revision and per instance.
    by_rev = {rev: svc.logs(tail=0, version=rev) for rev in (1, 2)}
    assert any(l["message"].startswith("serving v1 ") for l in by_rev[1]), by_rev[1]
    assert all(l["revision"] == 1 and l["instance"] == v1["id"] for l in by_rev[1]), by_rev[1]
    assert any(l["message"].startswith("serving v2 ") for l in by_rev[2]), by_rev[2]
    assert all(l["revision"] == 2 for l in by_rev[2]), by_rev[2]
    only = svc.logs(tail=0, instance=v1["id"])
    assert only and all(l["instance"] == v1["id"] for l in only), only
    assert svc.events("live", st), st["events"]

    svc.define({**base, "command": ["python3", "-c", "import sys; sys.exit(1)"]})
    st = svc.wait(lambda s: s["failed_revision"] == 3, 30, "revision 3 rolled back",
                  interval=0.05)
    assert st["active_revision"] == 2 and st["revision"] == 3, st
    rb = svc.events("rolled-back", st)
    assert rb, st["events"]
    assert "revision 3" in rb[0]["message"] and "exited with code 1" in rb[0]["message"], rb
    assert "revision 2 stays live" in rb[0]["message"], rb
    # The v2 instance was never touched.
    st = svc.wait(lambda s: [(i["id"], i["state"]) for i in live(s)] == [(v2["id"], "running")],
                  10, "only the revision 2 instance live")
    assert live(st)[0]["pid"] == v2["pid"]
    assert get(v2["host"], v2["port"]).text == "v2"
    # Revision 3 is not retried: supervisor_test covers that over time with a fake clock.
    st = svc.status()
    assert [i["id"] for i in live(st)] == [v2["id"]], st
    assert st["running"] == 1 and st["active_revision"] == 2 and st["failed_revision"] == 3


def test_a_revision_crashing_after_going_live_is_rolled_back_to_the_old_instance(new_service):
    """Revision 2 passes its first health check, takes the traffic, and crashes 4 s after it
    started: within its min-healthy-time (10 s), so the traffic goes back to revision 1's
    instance, which never stopped, and revision 2 is not retried."""
    svc = new_service("settle")
    base = {"container-port": next_port(), "base-path": "strip"}
    svc.define({**base, "command": app_command("v1")})
    v1 = svc.wait_running(revision=1)
    svc.wait(lambda s: s["active_revision"] == 1, 5, "revision 1 live")
    path = f"/default-{svc.name}/"
    svc.define({**base, "command": app_command("v2"),
                "environment": [{"name": "DIE_AFTER", "value": "4"}]})
    seen, failed = set(), 0
    deadline = time.monotonic() + 30
    while True:
        try:
            r = svc.d.get(path, timeout=2)
            if r.status_code == 200:
                seen.add(r.text)
            else:
                failed += 1
        except requests.RequestException:
            failed += 1
        st = svc.status()
        if st["failed_revision"] == 2:
            break
        assert time.monotonic() < deadline, f"revision 2 was not rolled back: {st}"
        time.sleep(0.02)
    print(f"\nserved {sorted(seen)} during the update; {failed} requests failed")
    assert "v2" in seen, "revision 2 never took the traffic"
    assert st["active_revision"] == 1 and st["revision"] == 2, st
    rb = svc.events("rolled-back", st)
    assert rb and "of going live" in rb[-1]["message"], st["events"]
    assert "exited with code 3" in rb[-1]["message"], rb
    # The revision 1 instance never stopped and serves again, at once.
    assert [(i["id"], i["pid"]) for i in live(st)] == [(v1["id"], v1["pid"])], st
    for _ in range(20):
        r = svc.d.get(path, timeout=5)
        assert r.status_code == 200 and r.text == "v1", (r.status_code, r.text)
    time.sleep(1)  # not retried: no new instance of revision 2 appears
    st = svc.status()
    assert [i["id"] for i in live(st)] == [v1["id"]], st


def test_after_min_healthy_time_the_old_revision_stops(new_service):
    svc = new_service("settled")
    base = {"container-port": next_port(), "base-path": "strip", "min-healthy-time": 2}
    svc.define({**base, "command": app_command("v1")})
    v1 = svc.wait_running(revision=1)
    svc.define({**base, "command": app_command("v2")})
    svc.wait(lambda s: s["active_revision"] == 2, 20, "revision 2 live", interval=0.02)
    wait_until(lambda: not pid_alive(v1["pid"]), 15, "the revision 1 process to exit")
    # The process is gone before its shim reports the exit: the instance stays "stopping"
    # in the status until then.
    st = svc.wait(lambda s: all(i["revision"] == 2 for i in live(s)), 15,
                  "revision 1 to leave the live instances")
    live_ev = [e for e in svc.events("live", st) if "revision 2" in e["message"]]
    settled = svc.events("settled", st)
    assert live_ev and "keeps running until it has been healthy for 2 s" in live_ev[-1]["message"]
    assert settled and "stopping revision 1" in settled[-1]["message"], st["events"]
    stopped_after = (datetime.fromisoformat(settled[-1]["time"].replace("Z", "+00:00")) -
                     datetime.fromisoformat(live_ev[-1]["time"].replace("Z", "+00:00")))
    assert stopped_after.total_seconds() >= 1.9, f"revision 1 stopped {stopped_after} after the switch"


# --- 6. the daemon dies, instances do not ---------------------------------------------------

def test_instances_survive_daemon_kill9_and_are_adopted(daemon_factory, new_service):
    d = daemon_factory()
    svc = new_service("survive", d=d)
    svc.define({"command": app_command("alive"), "container-port": next_port(),
                "base-path": "strip", "environment": [{"name": "TICK", "value": "0.1"}]})
    inst = svc.wait_running()
    r = get(inst["host"], inst["port"])
    assert r.text == "alive"

    d.kill9()
    count_at_kill = int(get(inst["host"], inst["port"]).headers["X-Count"])

    # The instance keeps serving and printing while no daemon is there.
    def advanced():
        r = answers(inst["host"], inst["port"])
        return r is not None and r.status_code == 200 and \
            int(r.headers["X-Count"]) >= count_at_kill + 10
    wait_until(advanced, 10, "the orphaned instance to keep counting", interval=0.05)
    assert pid_alive(inst["pid"])
    # What a push killed mid-way leaves: a partial upload, a half-unpacked tree.
    partial = Path(d.data_dir) / "uploads" / "upload-1-1"
    partial.write_bytes(b"\x1f\x8b half")
    half = Path(d.data_dir) / "artifacts" / "tmp" / "ab.unpack.x"
    half.mkdir(parents=True)

    d.start()
    assert not partial.exists() and not half.exists(), "leftovers of interrupted pushes swept"
    st = svc.wait(lambda s: any(i["id"] == inst["id"] and i["state"] == "running"
                                for i in s["instances"]), 10, "the instance re-adopted")
    same = [i for i in st["instances"] if i["id"] == inst["id"]][0]
    assert same["pid"] == inst["pid"], same
    assert same["restarts"] == inst["restarts"] == 0, same
    assert [i["id"] for i in live(st)] == [inst["id"]], st
    adopted = svc.events("adopted", st)
    assert adopted and inst["id"] in adopted[0]["message"], st["events"]
    assert str(inst["pid"]) in adopted[0]["message"]
    assert not svc.events("exited", st), st["events"]

    # Logs have no gap across the downtime.
    def enough():
        lines = svc.logs(tail=0)
        ticks = [int(m.group(1)) for l in lines
                 if (m := re.fullmatch(r"tick (\d+)", l["message"]))]
        return ticks if ticks and ticks[-1] >= count_at_kill + 15 else None
    ticks = wait_until(enough, 10, "log lines written after the restart", interval=0.1)
    assert ticks[0] == 1, ticks[:5]
    assert ticks == list(range(1, ticks[-1] + 1)), \
        f"gap in the counter: {[b for a, b in zip(ticks, ticks[1:]) if b != a + 1]}"


def test_instance_that_died_while_the_daemon_was_down_is_restarted_once(daemon_factory,
                                                                       new_service):
    d = daemon_factory()
    svc = new_service("orphan", d=d)
    svc.define({"command": app_command("back"), "container-port": next_port(),
                "base-path": "strip"})
    inst = svc.wait_running()
    d.kill9()
    os.kill(inst["pid"], signal.SIGKILL)
    exit_json = d.data_dir / "instances" / inst["id"] / "exit.json"
    wait_until(exit_json.exists, 10, "the shim to record the exit")

    d.start()

    def replaced(st):
        for i in st["instances"]:
            if i["state"] == "running" and i["id"] != inst["id"]:
                return i
        return None
    second = svc.wait(replaced, 10, "a replacement for the instance that died meanwhile")
    assert second["restarts"] == 1, second
    assert get(second["host"], second["port"]).text == "back"
    st = svc.status()
    old = [i for i in st["instances"] if i["id"] == inst["id"]]
    assert old and old[0]["state"] == "exited" and old[0]["signal"] == 9, old
    exited = svc.events("exited", st)
    assert len(exited) == 1 and inst["id"] in exited[0]["message"], st["events"]
    assert not [e for e in svc.events("adopted", st) if inst["id"] in e["message"]]

    # Another restart adopts the replacement and does not count the old exit again.
    d.restart()
    st = svc.wait(lambda s: svc.events("adopted", s), 10, "the replacement adopted")
    assert second["id"] in svc.events("adopted", st)[0]["message"]
    st = svc.wait(lambda s: [(i["id"], i["state"]) for i in live(s)] == [(second["id"], "running")],
                  10, "only the replacement running")
    assert live(st)[0]["pid"] == second["pid"] and live(st)[0]["restarts"] == 1, st
    assert len(svc.events("exited", st)) == 1, st["events"]


def test_rollback_and_stop_survive_a_daemon_restart(daemon_factory, new_service):
    d = daemon_factory()
    svc = new_service("keep", d=d)
    base = {"container-port": next_port(), "base-path": "strip"}
    svc.define({**base, "command": app_command("good")})
    good = svc.wait_running(revision=1)
    svc.define({**base, "command": ["python3", "-c", "import sys; sys.exit(3)"]})
    svc.wait(lambda s: s["failed_revision"] == 2, 30, "revision 2 rolled back", interval=0.05)
    svc.wait(lambda s: [i["id"] for i in live(s)] == [good["id"]], 10, "only revision 1 live")

    d.restart()
    st = svc.wait(lambda s: svc.events("adopted", s), 10, "the good instance adopted")
    started_before = len(svc.events("started", st))
    # That revision 2 is not retried later is supervisor_test's (fake clock, no sleep).
    st = svc.status()
    assert st["active_revision"] == 1 and st["failed_revision"] == 2 and st["revision"] == 2, st
    assert [(i["id"], i["pid"]) for i in live(st)] == [(good["id"], good["pid"])], st
    assert len(svc.events("started", st)) == started_before, st["events"]
    assert get(good["host"], good["port"]).text == "good"

    assert d.post(f"{svc.path}/stop").status_code == 200
    svc.wait(lambda s: not live(s), 15, "no live instance after stop")
    d.restart()
    # Re-adoption is done before the daemon writes daemon.json, which restart() waits for;
    # that the service stays down afterwards is supervisor_test's.
    st = svc.status()
    assert not live(st) and st["desired_running"] is False, st
    assert _refuses(good["host"], good["port"])
    assert d.post(f"{svc.path}/start").status_code == 200
    again = svc.wait_running(revision=1)
    assert get(again["host"], again["port"]).text == "good"


# --- 7. stop, start, delete -----------------------------------------------------------------

def _refuses(host, port):
    with socket.socket() as s:
        s.settimeout(2)
        try:
            s.connect((host, port))
        except ConnectionRefusedError:
            return True
        return False


def test_stop_start_and_delete(daemon, new_service):
    svc = new_service("ctl")
    port = next_port()
    # http.server with $(HOST)/$(PORT) expanded in argv, as in the manual.
    bundle = tarball({
        "berth.yaml": 'command: ["python3", "-m", "http.server", "--bind", "$(HOST)", '
                      f'"$(PORT)"]\nport: {port}\n',
        "index.html": f"<p>hello {svc.name}</p>\n",
    })
    digest = svc.push("v1", bundle)["digest"]
    hexd = digest.split(":", 1)[1]
    svc.define({"container-tag": "v1", "base-path": "strip"})
    inst = svc.wait_running()
    assert f"hello {svc.name}" in get(inst["host"], inst["port"]).text

    r = svc.d.post(f"{svc.path}/stop")
    assert r.status_code == 200 and r.json()["desired_running"] is False, r.text
    st = svc.wait(lambda s: not live(s), 15, "no live instance after stop")
    assert st["running"] == 0 and st["desired_running"] is False and st["desired"] == 0, st
    assert not pid_alive(inst["pid"])
    assert _refuses(inst["host"], inst["port"])
    assert svc.events("stop", st), st["events"]
    # Stopped stays stopped (over time: supervisor_test).
    assert not live(svc.status())

    r = svc.d.post(f"{svc.path}/start")
    assert r.status_code == 200 and r.json()["desired_running"] is True, r.text
    again = svc.wait_running()
    assert again["id"] != inst["id"]
    assert f"hello {svc.name}" in get(again["host"], again["port"]).text

    ids = [iid for iid, (meta, _) in instance_records(daemon.data_dir).items()
           if meta.get("service") == svc.name]
    assert inst["id"] in ids and again["id"] in ids
    unpacked = daemon.data_dir / "artifacts" / "unpacked" / hexd
    blob = daemon.data_dir / "artifacts" / "blobs" / hexd
    assert unpacked.is_dir() and blob.is_file()

    r = svc.d.delete(svc.path)
    assert r.status_code == 200, r.text
    wait_until(lambda: not pid_alive(again["pid"]), 15, "the instance to stop after delete")
    wait_until(lambda: _refuses(again["host"], again["port"]), 5, "the port to close")
    wait_until(lambda: not any((daemon.data_dir / "instances" / i).exists() for i in ids), 15,
               "the service's instance directories to be removed")
    assert not unpacked.exists() and not blob.exists()
    assert svc.d.get(f"{svc.path}/status").status_code == 404
    assert svc.d.get(f"{svc.path}/artifacts").status_code == 404


def test_command_arguments_expand_variables(new_service):
    svc = new_service("argv")
    svc.define({"command": ["python3", "-c", "import sys, time; print(repr(sys.argv[1:]), "
                            "flush=True); time.sleep(60)",
                            "$(HOST):$(PORT)", "$$(PORT)", "$(NOT_SET)", "$(GREETING)!",
                            "$(BERTH_SERVICE)"],
                "environment": [{"name": "GREETING", "value": "hi"}],
                "container-port": next_port(), "health-check": {"type": "tcp"}})
    lines = wait_until(lambda: [l for l in svc.logs(tail=10) if l["message"].startswith("[")],
                       10, "the program's argv in its logs")
    inst = svc.status()["instances"][0]
    assert lines[0]["message"] == repr([f"{inst['host']}:{inst['port']}", "$(PORT)",
                                        "$(NOT_SET)", "hi!", svc.name]), lines


# --- 8. the CLI ------------------------------------------------------------------------------

def _cli(d, tmp_path, *args):
    env = clean_env(BERTH_URL=d.url, BERTH_TOKEN=d.admin_token, HOME=str(tmp_path),
                    XDG_CONFIG_HOME=str(tmp_path / "xdg"))
    p = subprocess.run([BERTH_BIN, *args], env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, f"berth {' '.join(args)} exited {p.returncode}:\n{p.stderr}"
    return p.stdout


def test_cli_push_logs_and_show(daemon, new_service, tmp_path):
    svc = new_service("cli")
    port = next_port()
    bundle = tmp_path / "bundle"
    (bundle / "notes").mkdir(parents=True)
    (bundle / "berth.yaml").write_text(f'command: ["python3", "app.py", "from-cli"]\n'
                                       f'port: {port}\nenv:\n  TICK: "0.05"\n')
    (bundle / "app.py").write_text(APP)
    (bundle / "secret.env").write_text("PASSWORD=hunter2\n")
    (bundle / "notes" / "keep.md").write_text("kept\n")
    (bundle / "notes" / "draft.tmp").write_text("dropped\n")
    (bundle / ".berthignore").write_text("# not for the server\nsecret.env\n*.tmp\n")

    out = _cli(daemon, tmp_path, "push", svc.name, str(bundle), "--tag", "t1")
    assert f"{svc.name}:t1" in out, out
    m = re.search(r"Digest: sha256:([0-9a-f]{64})", out)
    assert m, out
    unpacked = daemon.data_dir / "artifacts" / "unpacked" / m.group(1)
    assert (unpacked / "app.py").is_file() and (unpacked / "berth.yaml").is_file()
    assert (unpacked / "notes" / "keep.md").read_text() == "kept\n"
    assert not (unpacked / "secret.env").exists()
    assert not (unpacked / "notes" / "draft.tmp").exists()
    arts = svc.d.get(f"{svc.path}/artifacts").json()["artifacts"]
    assert [a["tag"] for a in arts] == ["t1"] and arts[0]["digest"] == "sha256:" + m.group(1)

    svc.define({"container-tag": "t1", "base-path": "strip"})
    inst = svc.wait_running()
    assert get(inst["host"], inst["port"]).text == "from-cli"
    wait_until(lambda: len(svc.logs(tail=10)) >= 6, 10, "some log lines")

    out = _cli(daemon, tmp_path, "logs", svc.name, "-n", "5")
    lines = out.splitlines()
    assert len(lines) == 5, out
    for line in lines:
        assert re.fullmatch(rf"\S+Z {inst['id']} stdout +(tick \d+|serving from-cli on \S+)",
                            line), line
    assert re.search(r"tick \d+$", lines[-1]), out
    last = int(lines[-1].rsplit(" ", 1)[1])

    # Following: the API streams new lines as NDJSON while the program writes them.
    with svc.d.get(f"{svc.path}/logs", params={"tail": 2, "follow": 1}, stream=True) as r:
        assert r.status_code == 200, r.text
        assert r.headers["Content-Type"].startswith("application/x-ndjson"), r.headers
        seen = []
        deadline = time.monotonic() + 10
        for raw in r.iter_lines():
            if raw:
                line = json.loads(raw)
                assert line["instance"] == inst["id"] and line["revision"] == 1, line
                seen.append(line["message"])
                m = re.fullmatch(r"tick (\d+)", line["message"])
                if m and int(m.group(1)) >= last + 5:
                    break
            assert time.monotonic() < deadline, f"follow did not deliver new lines: {seen}"
    ticks = [int(m.group(1)) for t in seen if (m := re.fullmatch(r"tick (\d+)", t))]
    assert ticks == list(range(ticks[0], ticks[-1] + 1)), ticks

    out = _cli(daemon, tmp_path, "services", "show", svc.name)
    assert "Instances:" in out, out
    header = next(l for l in out.splitlines() if l.lstrip().startswith("ID"))
    for col in ("REV", "STATE", "ADDRESS", "PID", "RESTARTS"):
        assert col in header, header
    row = next((l for l in out.splitlines() if inst["id"] in l and "running" in l), None)
    assert row, out
    assert f"{inst['host']}:{port}" in row and str(inst["pid"]) in row, row


# --- 9. a definition waiting for its artifact -----------------------------------------------

def test_definition_naming_an_unpushed_tag_is_refused_until_it_is_pushed(new_service):
    svc = new_service("wait")
    port = next_port()
    r = svc.define({"container-tag": "later", "base-path": "strip"}, expect=400)
    msg = r.json()["error"]["message"]
    assert "no bundle tagged 'later'" in msg and "none was pushed yet" in msg, msg
    assert f"berth push {svc.name} DIR --tag later" in msg, msg
    assert svc.d.get(svc.path).json()["revision"] == 0
    assert svc.status()["instances"] == []

    svc.push("later", tarball({"berth.yaml": f'command: ["python3", "app.py", "late"]\n'
                                             f'port: {port}\n', "app.py": APP}))
    svc.define({"container-tag": "later", "base-path": "strip"})
    inst = svc.wait_running()
    assert get(inst["host"], inst["port"]).text == "late"
    assert svc.status()["active_revision"] == 1


# --- 10. admission ---------------------------------------------------------------------------

def test_reservation_larger_than_the_machine_is_refused(new_service):
    svc = new_service("big")
    svc.define({"command": app_command(), "container-port": next_port(), "base-path": "strip"})
    before = svc.d.get(svc.path).json()
    assert before["revision"] == 1, before
    r = svc.d.put(svc.path, json={"command": app_command(), "memory-reservation": 1_000_000})
    msg = assert_native_error(r, 409)
    assert "memory-reservation" in msg and "1000000 MB" in msg, msg
    mem_mb = int(re.search(r"MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text())
                 .group(1)) // 1024
    assert str(mem_mb) in msg, msg
    after = svc.d.get(svc.path).json()
    assert after["revision"] == 1, after
    revs = svc.d.get(f"{svc.path}/revisions").json()["revisions"]
    assert [r["revision"] for r in revs] == [1], revs
    assert svc.status()["revision"] == 1


# Listens only after 3 s, and then retries its bind until the address is free.
LATE_LISTENER = r"""
import http.server, os, time
time.sleep(3)
while True:
    try:
        srv = http.server.HTTPServer((os.environ["HOST"], int(os.environ["PORT"])),
                                     http.server.BaseHTTPRequestHandler)
        break
    except OSError:
        time.sleep(0.1)
srv.serve_forever()
"""


def test_a_health_check_answered_by_another_program_does_not_make_an_instance_ready(new_service):
    """Decision 6's last line: a probe that reaches the instance's address proves nothing if
    another program (outside berth, another daemon's) listens there. The instance stays
    starting, its health says why, and it becomes ready once its own program listens."""
    svc = new_service("impostor")
    svc.define({"container-port": next_port(), "base-path": "strip",
                "health-check": {"type": "tcp", "interval": 1},
                "command": ["python3", "-c", LATE_LISTENER]})
    inst = svc.wait(lambda s: next((i for i in s["instances"] if i.get("host")), None), 20,
                    "an instance with an address")
    impostor = socket.socket()
    impostor.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    impostor.bind((inst["host"], inst["port"]))
    impostor.listen(16)
    try:
        st = svc.wait(lambda s: any("not a process of this instance" in (i.get("health") or "")
                                    for i in s["instances"]), 20,
                      "the probe to see that another program answers")
        assert not [i for i in st["instances"] if i["state"] == "running"], st
        assert not svc.events("ready", st), st["events"]
    finally:
        impostor.close()
    ready = svc.wait_running(20)
    assert ready["id"] == inst["id"], "the instance itself becomes ready once it listens"
