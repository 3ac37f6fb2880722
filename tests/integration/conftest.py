"""Shared fixtures for berth's integration tests.

Every test talks to a real `berth serve` process started on 127.0.0.1:0. The daemon reports the
port it picked in DATA_DIR/daemon.json, and the admin token it created in DATA_DIR/admin.token,
so the fixtures never guess ports and never sleep for a fixed time: they poll with a deadline.

Run with Debian's interpreter:
    BERTH_BIN=build/src/berth/berth /usr/bin/python3 -m pytest -q tests/integration
"""
import io
import itertools
import json
import os
import signal
import tarfile
import subprocess
import time
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
BERTH_BIN = os.environ.get("BERTH_BIN", str(REPO / "build/src/berth/berth"))
if not os.path.isabs(BERTH_BIN):
    # The documented invocation passes a path relative to the repository root.
    BERTH_BIN = str((Path.cwd() / BERTH_BIN).resolve())

START_TIMEOUT = 15.0
STOP_TIMEOUT = 15.0
HTTP_TIMEOUT = 10.0

# Settings the daemon reads from the environment; a developer's shell must not leak them in.
DAEMON_ENV_KEYS = ("BERTH_DATA_DIR", "BERTH_LISTEN", "BERTH_THREADS", "BERTH_PUBLIC_URL",
                   "BERTH_URL", "BERTH_TOKEN")


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in DAEMON_ENV_KEYS}
    env.update(extra)
    return env


def wait_until(predicate, timeout, what, interval=0.02):
    """Polls `predicate` until it returns something truthy; fails naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Daemon:
    """One `berth serve` process on a data directory; can be stopped and started again."""

    def __init__(self, data_dir, log_path, extra_args=(), env=None):
        self.data_dir = Path(data_dir)
        self.log_path = Path(log_path)
        self.extra_args = list(extra_args)
        self.env = clean_env(**(env or {}))
        self.proc = None
        self.url = None
        self.address = None
        self.admin_token = None
        self._log = None

    # --- lifecycle -------------------------------------------------------------------------

    def start(self):
        assert self.proc is None or self.proc.poll() is not None, "daemon already running"
        cmd = [BERTH_BIN, "serve", "--data-dir", str(self.data_dir), "--listen", "127.0.0.1:0",
               *self.extra_args]
        # Append so that a restarted daemon's log follows the previous one's.
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=self._log, env=self.env)
        info = wait_until(self._read_info, START_TIMEOUT, f"{self.data_dir}/daemon.json")
        self.address = info["address"]
        self.url = info["url"]
        assert self.url.startswith("http://127.0.0.1:"), info
        self.admin_token = (self.data_dir / "admin.token").read_text().strip()
        assert self.admin_token.startswith("berth_")
        # daemon.json is written after the listener is up; one request proves it answers.
        r = requests.get(self.url + "/api/v1/health", timeout=HTTP_TIMEOUT)
        assert r.status_code == 200, r.text
        return self

    def _read_info(self):
        if self.proc.poll() is not None:
            self._log.close()
            raise AssertionError(
                f"berth serve exited with {self.proc.returncode} during startup:\n{self.log()}")
        try:
            info = json.loads((self.data_dir / "daemon.json").read_text())
        except (FileNotFoundError, ValueError):
            return None
        # After a kill -9 the previous process's daemon.json is still there; wait for ours.
        return info if info.get("pid") == self.proc.pid else None

    def stop(self, sig=signal.SIGTERM):
        """Sends `sig` and waits; returns the exit code (negative for death by signal)."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"berth did not stop within {STOP_TIMEOUT}s after {sig!r}")
        finally:
            self._log.close()
        return rc

    def kill9(self):
        rc = self.stop(signal.SIGKILL)
        assert rc == -signal.SIGKILL, rc
        return rc

    def restart(self):
        rc = self.stop()
        assert rc == 0, f"berth exited with {rc} on SIGTERM:\n{self.log()}"
        return self.start()

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # --- HTTP helpers ----------------------------------------------------------------------

    def request(self, method, path, token=None, **kwargs):
        """A native-API request; `token` defaults to the admin token, "" sends none."""
        headers = dict(kwargs.pop("headers", {}))
        if token is None:
            token = self.admin_token
        if token:
            headers["Authorization"] = "Bearer " + token
        kwargs.setdefault("timeout", HTTP_TIMEOUT)
        return requests.request(method, self.url + path, headers=headers, **kwargs)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def put(self, path, **kw):
        return self.request("PUT", path, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)


def instance_processes(data_dir):
    """Pids of the instance shims berth started from `data_dir`, and all their descendants."""
    marker = f"{data_dir}/instances/"
    parents = {}
    roots = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().decode(errors="replace")
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        parents[int(entry)] = ppid
        if marker in cmdline:
            roots.add(int(entry))
    found = set(roots)
    grew = True
    while grew:
        grew = False
        for pid, ppid in parents.items():
            if ppid in found and pid not in found:
                found.add(pid)
                grew = True
    return found


def reap_instances(data_dir):
    """Instances outlive the daemon by design (the next daemon re-adopts them). A test that
    leaves one running would leak it past the test run: kill those, by pid, and return them."""
    pids = instance_processes(data_dir)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return pids


def _stop_and_check(d):
    try:
        if d.running():
            rc = d.stop()
            assert rc == 0, f"berth exited with {rc} on SIGTERM:\n{d.log()}"
    finally:
        # Also when the daemon had to be killed: nothing it started may outlive the test.
        leaked = reap_instances(d.data_dir)
    assert not leaked, f"instances still running after the test: pids {sorted(leaked)}"


@pytest.fixture
def daemon_factory(tmp_path):
    """Starts daemons on request (`factory()` or `factory(data_dir=..., extra_args=...)`).

    Every daemon still running at teardown gets SIGTERM and must exit 0, and no instance it
    started may still run."""
    started = []
    counter = itertools.count()

    def factory(data_dir=None, extra_args=(), env=None, start=True):
        n = next(counter)
        d = Daemon(data_dir or tmp_path / f"data{n}", tmp_path / f"daemon{n}.log",
                   extra_args, env)
        started.append(d)
        return d.start() if start else d

    yield factory
    errors = []
    for d in started:
        try:
            _stop_and_check(d)
        except AssertionError as e:  # stop every daemon even if one misbehaves
            errors.append(str(e))
    assert not errors, "\n".join(errors)


@pytest.fixture
def fresh_daemon(daemon_factory):
    """A daemon of the test's own, for tests that change global state (admin tokens, crashes)."""
    return daemon_factory()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    """One daemon per test module; tests use unique names so they do not see each other."""
    base = tmp_path_factory.mktemp("berth")
    d = Daemon(base / "data", base / "daemon.log").start()
    yield d
    _stop_and_check(d)


_names = itertools.count()


def unique(prefix):
    """A name no other test in this run uses (lowercase letters, digits; valid everywhere)."""
    return f"{prefix}{os.getpid() % 1000}x{next(_names)}"


def create_project(d, name=None):
    """Creates a project with the admin token; returns its name."""
    name = name or unique("p")
    r = d.post("/api/v1/projects", json={"name": name})
    assert r.status_code == 201, r.text
    return name


def create_token(d, project=None, admin=False, description=None, token=None):
    """Creates a token and returns the full JSON answer (with the one-time secret in "token")."""
    body = {}
    if project is not None:
        body["project"] = project
    if admin:
        body["admin"] = True
    if description is not None:
        body["description"] = description
    r = d.post("/api/v1/tokens", json=body, token=token)
    assert r.status_code == 201, r.text
    return r.json()


def project_with_token(d, name=None):
    """Creates a project and a token for it; returns (project, secret)."""
    project = create_project(d, name)
    return project, create_token(d, project=project)["token"]


def http_server_bundle():
    """A bundle (tar.gz) whose berth.yaml runs Python's HTTP server on the address berth gives
    the instance. Debian's interpreter by absolute path: instances do not inherit PATH."""
    berth_yaml = (b'command: ["/usr/bin/python3", "-m", "http.server", "--bind", "$(HOST)", '
                  b'"$(PORT)"]\n')
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("berth.yaml")
        info.size = len(berth_yaml)
        tar.addfile(info, io.BytesIO(berth_yaml))
    return buf.getvalue()


def inert_bundle():
    """A bundle with nothing to run (no berth.yaml): a definition may name its tag, and no
    process starts (the revision cannot run, and says so in the events)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("README")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"inert"))
    return buf.getvalue()


def push_bundle(d, service, tag, token=None, project=None, bundle=None):
    path = f"/api/v1/services/{service}/artifacts/{tag}"
    if project:
        path += f"?project={project}"
    r = d.put(path, data=bundle or http_server_bundle(), token=token)
    assert r.status_code == 201, r.text
    return r.json()


def pid_alive(pid):
    """True while `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture
def project(daemon):
    """A new project on the module's daemon and its token: (name, secret)."""
    return project_with_token(daemon)


def assert_native_error(r, status, code=None, contains=()):
    """Every native error is exactly {"error": {"code": str, "message": str}}."""
    assert r.status_code == status, f"expected {status}, got {r.status_code}: {r.text}"
    assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers
    body = r.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    assert isinstance(body["error"]["code"], str) and body["error"]["code"], body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], body
    if code is not None:
        assert body["error"]["code"] == code, body
    if isinstance(contains, str):
        contains = (contains,)
    for fragment in contains:
        assert fragment in body["error"]["message"], body
    return body["error"]["message"]
