"""Seed 001 end to end: `berth init` writes the 25-line hello service, `berth deploy hello
1.0.0` runs it, entrypoints, parameters and notifications work through the platform and the
gateway, a second version runs as a shadow, `berth assign` moves MAIN without a failed request,
and `berth kill` removes the old one. The Python SDK first; the C++ SDK in test_sdk_cpp.py."""
import json
import os
import re
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from conftest import (BERTH_BIN, HTTP_TIMEOUT, assert_native_error, clean_env,
                      instance_processes, wait_until)


def cli(d, *args, check=True, input=None, timeout=180):
    env = clean_env(BERTH_URL=d.url, BERTH_TOKEN=d.admin_token, HOME=str(d.data_dir.parent))
    p = subprocess.run([BERTH_BIN, *args], capture_output=True, text=True, env=env, input=input,
                       timeout=timeout)
    if check:
        assert p.returncode == 0, f"berth {' '.join(args)} exited {p.returncode}:\n{p.stdout}\n{p.stderr}"
    return p


def gw(d, path, method="POST", **kw):
    headers = {"Authorization": "Bearer " + d.admin_token}
    return requests.request(method, d.url + path, headers=headers, timeout=HTTP_TIMEOUT, **kw)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def versions(d, name):
    r = d.get(f"/api/v1/services/{name}/versions")
    assert r.status_code == 200, r.text
    return r.json()


def wait_running(d, name, version, replicas=1):
    def ready():
        for v in versions(d, name)["versions"]:
            if v["version"] == version and v["state"] == "running" and v["ready"] >= replicas:
                return v
        return None
    return wait_until(ready, 60, f"{name} {version} running")


def assign_under_load(d, name, version, new_answer):
    """Runs `berth assign NAME VERSION` while a client loop calls the entrypoint; asserts no
    request failed and the loop saw `new_answer`. Returns every answer seen."""
    failures, answers, stop = [], set(), threading.Event()

    def loop():
        with requests.Session() as s:
            while not stop.is_set():
                try:
                    r = s.post(d.url + f"/default-{name}/hello", json={"name": "Ada"},
                               headers={"Authorization": "Bearer " + d.admin_token},
                               timeout=HTTP_TIMEOUT)
                    if r.status_code != 200:
                        failures.append((r.status_code, r.text[:200]))
                    else:
                        answers.add(r.json())
                except requests.RequestException as e:
                    failures.append(repr(e))
    t = threading.Thread(target=loop)
    t.start()
    try:
        time.sleep(0.5)
        out = cli(d, "assign", name, version).stdout
        assert f"{version} is MAIN" in out, out
        wait_until(lambda: new_answer in answers, 15, f"traffic on {version}")
        time.sleep(0.5)
    finally:
        stop.set()
        t.join(30)
    assert failures == [], failures
    return answers


def every_replica_answers(d, name, expected, replicas=2):
    """Calls each running instance directly (not through the balancer)."""
    st = d.get(f"/api/v1/services/{name}/status").json()
    running = [i for i in st["instances"] if i["state"] == "running"]
    assert len(running) == replicas, st
    for inst in running:
        r = requests.post(f"http://{inst['host']}:{inst['port']}/default-{name}/hello",
                          json={"name": "Ada"}, timeout=HTTP_TIMEOUT)
        assert r.json() == expected, (inst["id"], r.text)
    return running


def restart_one_replica(d, name, replicas=2):
    """kill -9 of one replica; returns once the supervisor has a fresh one running."""
    st = d.get(f"/api/v1/services/{name}/status").json()
    victim = next(i for i in st["instances"] if i["state"] == "running")
    os.kill(victim["pid"], 9)

    def back():
        s = d.get(f"/api/v1/services/{name}/status").json()
        fresh = [i for i in s["instances"] if i["state"] == "running" and i["pid"] != victim["pid"]]
        return fresh if len(fresh) == replicas else None
    return wait_until(back, 30, "replica restarted")


@pytest.fixture(scope="module")
def hello(daemon, tmp_path_factory):
    """The scaffold, deployed as hello 1.0.0 with two replicas."""
    src = tmp_path_factory.mktemp("hello")
    out = cli(daemon, "init", str(src / "hello"), "--lang", "python").stdout
    assert "berth deploy hello 1.0.0" in out, out
    assert (src / "hello" / "service.py").exists()
    (src / "replicas.yaml").write_text("replicas: 2\n")
    p = cli(daemon, "deploy", "hello", "1.0.0", str(src / "hello"), "-f", str(src / "replicas.yaml"))
    yield {"dir": src / "hello", "deploy": p}
    daemon.delete("/api/v1/services/hello")
    # Deleting stops instances in the background; the module's leak check comes after.
    wait_until(lambda: not instance_processes(daemon.data_dir), 30, "every instance stopped")


def test_scaffold_is_the_seed_example_and_its_own_test_passes(daemon, hello):
    code = (hello["dir"] / "service.py").read_text()
    assert len(code.strip().splitlines()) <= 25, code
    for needle in ('add_parameter("greeting_phrase", "Hello")', "@service.entrypoint",
                   'if name == "World":', "Severity.WARNING", "service.run()"):
        assert needle in code, needle
    for f in ("berth.yaml", "README.md", "test_service.py"):
        assert (hello["dir"] / f).exists(), f
    env = clean_env(PYTHONPATH=str(Path(__file__).resolve().parents[2] / "sdk/python"))
    p = subprocess.run(["/usr/bin/python3", "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "test_service.py"], cwd=hello["dir"], capture_output=True, text=True,
                       env=env, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr


def test_deploy_prints_the_seed_table(daemon, hello):
    p = hello["deploy"]
    assert "Service deployed successfully" in p.stderr, p.stderr
    lines = [l for l in p.stdout.splitlines() if l.strip()]
    assert re.match(r"MAIN\s+NAME\s+VERSION\s+STATUS\s+RUNNING", lines[0]), p.stdout
    assert re.search(r"^\*\s+hello\s+1\.0\.0\s+running\s+Running \(since \d{4}-\d\d-\d\d "
                     r"\d\d:\d\d:\d\d\)", p.stdout, re.M), p.stdout
    ls = cli(daemon, "ls").stdout
    assert re.search(r"^\*\s+hello\s+1\.0\.0\s+running", ls, re.M), ls


def test_entrypoint_through_the_gateway(daemon, hello):
    r = gw(daemon, "/default-hello/hello", json={"name": "Ada"})
    assert r.status_code == 200 and r.json() == "Hello Ada", r.text


def test_bad_input_is_refused_with_the_right_codes(daemon, hello):
    r = gw(daemon, "/default-hello/hello", json={"name": 3})
    assert r.status_code == 422 and "name" in r.json()["error"]["message"], r.text
    r = gw(daemon, "/default-hello/hello", json={})
    assert r.status_code == 422 and "name" in r.json()["error"]["message"], r.text
    r = gw(daemon, "/default-hello/goodbye", json={"name": "Ada"})
    assert r.status_code == 404, r.text
    r = daemon.post("/api/v1/services/hello/parameters/nope", json={"value": 1})
    assert_native_error(r, 404, contains=["nope"])
    r = daemon.post("/api/v1/services/hello/parameters/greeting_phrase", json={"value": 3})
    assert r.status_code == 422 and "greeting_phrase" in r.json()["error"]["message"], r.text
    r = daemon.post("/api/v1/services/hello/parameters/greeting_phrase", json={"bad": "x"})
    assert_native_error(r, 400, "invalid_argument", ["value"])
    # A version is immutable.
    p = cli(daemon, "deploy", "hello", "1.0.0", str(hello["dir"]), check=False)
    assert p.returncode != 0 and "already exists" in p.stderr, p.stderr
    r = daemon.post("/api/v1/services/hello/versions", json={"version": "1.0.0"})
    assert_native_error(r, 409, "already_exists")
    r = daemon.post("/api/v1/services/hello/versions", json={"version": "../x"})
    assert_native_error(r, 400, "invalid_argument", ["version"])
    # A version whose bundle was never pushed: the pushed tags, and the command doing both.
    r = daemon.post("/api/v1/services/hello/versions", json={"version": "9.9.9"})
    assert_native_error(r, 400, "invalid_argument",
                        ["no bundle tagged '9.9.9'", "pushed: ", "1.0.0",
                         "berth deploy hello 9.9.9 DIR, which does both"])
    r = daemon.put("/api/v1/services/hello", json={"command": ["true"]})
    assert_native_error(r, 409, contains=["versions"])


def test_parameter_reaches_every_replica_and_survives_a_restart(daemon, hello):
    r = daemon.post("/api/v1/services/hello/parameters/greeting_phrase",
                    json={"greeting_phrase": "Bonjour"})  # the seed's own form
    assert r.status_code == 200 and r.json()["instances"] == 2, r.text
    every_replica_answers(daemon, "hello", "Bonjour Ada")
    # A crashed replica comes back with the stored value.
    restart_one_replica(daemon, "hello")
    every_replica_answers(daemon, "hello", "Bonjour Ada")
    params = cli(daemon, "params", "ls", "hello").stdout
    assert re.search(r"greeting_phrase\s+\"Bonjour\"\s+string\s+yes", params), params


def test_world_raises_a_counted_warning(daemon, hello):
    for _ in range(2):
        r = gw(daemon, "/default-hello/hello", json={"name": "World"})
        assert r.json() == "Greeting failed", r.text

    def counted():
        ns = daemon.get("/api/v1/notifications?service=hello").json()["notifications"]
        return [n for n in ns if "greet the World" in n["message"] and n["count"] >= 2]
    n = wait_until(counted, 15, "the World notification counted twice")[0]
    assert n["severity"] == "WARNING" and n["version"] == "1.0.0", n
    out = cli(daemon, "notifications", "ls").stdout
    assert re.search(r"WARNING\s+hello\s+1\.0\.0\s+2\s", out), out


def test_logs_show_the_greeting(daemon, hello):
    gw(daemon, "/default-hello/hello", json={"name": "Grace"})

    def logged():
        out = cli(daemon, "logs", "hello", "1.0.0", "-n", "200").stdout
        return out if "Greeting someone with the name: Grace" in out else None
    out = wait_until(logged, 15, "the greeting in berth logs")
    assert re.search(r"INFO .*Greeting someone with the name: Grace", out), out


def test_openapi_and_docs_through_the_gateway(daemon, hello):
    spec = gw(daemon, "/default-hello/openapi.json", method="GET")
    assert spec.status_code == 200, spec.text
    doc = spec.json()
    assert doc["openapi"].startswith("3.1"), doc
    hello_op = next(op for p, op in doc["paths"].items() if p.endswith("/hello"))["post"]
    schema = json.dumps(hello_op)
    assert '"name"' in schema and '"string"' in schema, schema
    page = gw(daemon, "/default-hello/docs", method="GET")
    assert page.status_code == 200 and "<html" in page.text.lower(), page.text[:200]
    # The platform's own reference.
    r = requests.get(daemon.url + "/api/v1/openapi.json", timeout=HTTP_TIMEOUT)
    assert r.status_code == 200 and "/api/v1/services/{name}/versions" in r.json()["paths"], r.text[:300]
    r = requests.get(daemon.url + "/api/v1/docs", timeout=HTTP_TIMEOUT)
    assert r.status_code == 200 and "text/html" in r.headers["Content-Type"], r.headers


def test_shadow_then_assign_without_a_failed_request_then_kill(daemon, hello, tmp_path):
    v2 = tmp_path / "hello2"
    cli(daemon, "init", str(v2))
    code = (v2 / "service.py").read_text().replace('f"{greeting_phrase} {name}"',
                                                   'f"{greeting_phrase} {name} (v2)"')
    (v2 / "service.py").write_text(code)
    cli(daemon, "deploy", "hello", "1.1.0", str(v2))
    ls = cli(daemon, "ls", "hello").stdout
    assert re.search(r"^\*\s+hello\s+1\.0\.0\s+running", ls, re.M), ls
    assert re.search(r"^\s+hello\s+1\.1\.0\s+running", ls, re.M), ls
    # MAIN still answers; the shadow is reachable pinned, with the stored parameter.
    assert gw(daemon, "/default-hello/hello", json={"name": "Ada"}).json() == "Bonjour Ada"
    r = gw(daemon, "/default-hello@1.1.0/hello", json={"name": "Ada"})
    assert r.json() == "Bonjour Ada (v2)", r.text

    def pids(version):
        st = daemon.get("/api/v1/services/hello/status").json()
        return sorted(i["pid"] for i in st["instances"]
                      if i["version"] == version and i["state"] == "running")
    old_main = pids("1.0.0")
    assert len(old_main) == 2, old_main
    answers = assign_under_load(daemon, "hello", "1.1.0", "Bonjour Ada (v2)")
    assert answers == {"Bonjour Ada", "Bonjour Ada (v2)"}, answers
    # The old MAIN runs on as a shadow, the same processes, until it is killed.
    assert pids("1.0.0") == old_main, "assign restarted the old MAIN"
    assert gw(daemon, "/default-hello@1.0.0/hello", json={"name": "Ada"}).json() == "Bonjour Ada"
    # MAIN cannot be killed while a shadow runs; the old version can.
    p = cli(daemon, "kill", "hello", "1.1.0", "--yes", check=False)
    assert p.returncode != 0 and "MAIN" in p.stderr, p.stderr
    p = cli(daemon, "kill", "hello", "1.0.0", check=False)  # no terminal, no --yes: refused
    assert p.returncode != 0 and "--yes" in p.stderr, p.stderr
    cli(daemon, "kill", "hello", "1.0.0", "--yes")
    ls = cli(daemon, "ls", "hello").stdout
    assert "1.0.0" not in ls and re.search(r"^\*\s+hello\s+1\.1\.0", ls, re.M), ls

    def old_gone():
        st = daemon.get("/api/v1/services/hello/status").json()
        return all(i["version"] != "1.0.0" or i["state"] not in ("running", "starting")
                   for i in st["instances"])
    wait_until(old_gone, 30, "1.0.0's instances stopped")
    assert gw(daemon, "/default-hello/hello", json={"name": "Ada"}).json() == "Bonjour Ada (v2)"


def test_a_mirroring_shadow_sees_mains_traffic(daemon, hello, tmp_path):
    """After the assign test MAIN is 1.1.0. A shadow deployed with --mirror gets a copy of
    every request to MAIN (its answers are discarded); the client sees only MAIN's answer."""
    v3 = tmp_path / "hello3"
    cli(daemon, "init", str(v3))
    code = (v3 / "service.py").read_text().replace('f"{greeting_phrase} {name}"',
                                                   'f"{greeting_phrase} {name} (v3)"')
    (v3 / "service.py").write_text(code)
    cli(daemon, "deploy", "hello", "1.2.0", str(v3), "--mirror")
    for i in range(5):
        r = gw(daemon, "/default-hello/hello", json={"name": f"Mirror{i}"})
        assert r.json() == f"Bonjour Mirror{i} (v2)", r.text  # MAIN's answer, not the shadow's

    def mirrored():
        lines = daemon.get("/api/v1/services/hello/logs?version=1.2.0&tail=500").json()["lines"]
        seen = [l for l in lines if "Greeting someone with the name: Mirror" in l["message"]]
        return seen if len(seen) >= 5 else None
    seen = wait_until(mirrored, 15, "the shadow logging the five mirrored greetings")
    assert sorted(l["message"][-7:] for l in seen) == [f"Mirror{i}" for i in range(5)], seen
    cli(daemon, "kill", "hello", "1.2.0", "--yes")


# --- notification delivery: email to a real SMTP sink, webhooks, the event stream ----------

class Hooks(BaseHTTPRequestHandler):
    received = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Hooks.received.append(json.loads(body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass


@pytest.fixture
def smtp_sink(tmp_path):
    port = free_port()
    maildir = tmp_path / "mail"
    p = subprocess.Popen(["/usr/bin/python3", "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}",
                          "-c", "aiosmtpd.handlers.Mailbox", str(maildir)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def up():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return None
    wait_until(up, 15, "aiosmtpd listening")
    yield port, maildir
    p.terminate()
    p.wait(10)


def test_notifications_are_mailed_posted_and_streamed(daemon_factory, smtp_sink):
    port, maildir = smtp_sink
    hooks = ThreadingHTTPServer(("127.0.0.1", 0), Hooks)
    threading.Thread(target=hooks.serve_forever, daemon=True).start()
    d = daemon_factory(extra_args=["--smtp-url", f"smtp://127.0.0.1:{port}",
                                   "--smtp-from", "berth@test.example",
                                   "--webhook", f"http://127.0.0.1:{hooks.server_port}/hook"])
    stream = requests.get(d.url + "/api/v1/events/stream", stream=True, timeout=HTTP_TIMEOUT,
                          headers={"Authorization": "Bearer " + d.admin_token})
    assert stream.status_code == 200 and stream.headers["Content-Type"].startswith("text/event-stream")
    body = {"message": "disk almost full", "severity": "critical", "service": "etl",
            "emails": ["ops@test.example"], "timer": 3600}
    r = d.post("/api/v1/notifications", json=body)
    assert r.status_code == 201 and r.json()["severity"] == "CRITICAL", r.text
    r = d.post("/api/v1/notifications", json=body)
    assert r.status_code == 200 and r.json()["count"] == 2, r.text

    def mailed():
        files = [f for f in maildir.rglob("*") if f.is_file() and "new" in f.parts]
        return files or None
    mails = wait_until(mailed, 20, "an email in the SMTP sink")
    text = mails[0].read_text(errors="replace")
    assert "ops@test.example" in text and "berth@test.example" in text, text
    assert "disk almost full" in text and "CRITICAL" in text, text
    time.sleep(1)  # the second occurrence is inside the 3600 s suppression timer
    assert len(mailed()) == 1, "the suppression timer let a second email through"
    wait_until(lambda: len(Hooks.received) >= 2, 20, "two webhook posts")
    assert Hooks.received[-1]["message"] == "disk almost full" and Hooks.received[-1]["count"] == 2
    hooks.shutdown()
    # The event stream carried both.
    seen = b""
    deadline = time.monotonic() + 10
    for chunk in stream.iter_content(chunk_size=None):
        seen += chunk
        if seen.count(b"event: notification") >= 2 or time.monotonic() > deadline:
            break
    stream.close()
    assert seen.count(b"event: notification") >= 2, seen
    assert b"disk almost full" in seen
    # Bad input changes nothing.
    for bad, field in (({"severity": "INFO"}, "message"),
                       ({"message": "x", "severity": "LOUD"}, "severity"),
                       ({"message": "x", "emails": ["not-an-address"]}, "emails"),
                       ({"message": "x", "timer": -1}, "timer"),
                       ({"message": "x", "colour": "red"}, "colour")):
        assert_native_error(d.post("/api/v1/notifications", json=bad), 400, "invalid_argument",
                            [field])
    assert len(d.get("/api/v1/notifications").json()["notifications"]) == 1
    r = d.delete("/api/v1/notifications/999")
    assert_native_error(r, 404, "not_found")
    nid = d.get("/api/v1/notifications").json()["notifications"][0]["id"]
    assert d.delete(f"/api/v1/notifications/{nid}").status_code == 200
    assert d.get("/api/v1/notifications").json()["notifications"] == []


def test_the_platform_notifies_of_a_crash_loop(daemon):
    r = daemon.post("/api/v1/services", json={"name": "crashy"})
    assert r.status_code == 201, r.text
    r = daemon.put("/api/v1/services/crashy", json={"command": ["sh", "-c", "exit 3"]})
    assert r.status_code == 200, r.text

    def noticed():
        ns = daemon.get("/api/v1/notifications?service=crashy").json()["notifications"]
        return [n for n in ns if n["message"].startswith("crash-looping")]
    n = wait_until(noticed, 60, "a crash-looping notification")[0]
    assert n["severity"] == "CRITICAL" and n["instance"] == "berth", n
    assert n["version"] == "1", n  # unlabelled: its revision
    daemon.delete("/api/v1/services/crashy")


def test_versions_survive_a_daemon_kill(daemon_factory, tmp_path):
    """kill -9 of the daemon: MAIN and its shadow keep running, the next daemon re-adopts both
    (same pids), and the pinned route and the stored parameter still work."""
    d = daemon_factory()
    cli(d, "init", str(tmp_path / "h"))
    cli(d, "deploy", "hello", "1.0.0", str(tmp_path / "h"))
    cli(d, "deploy", "hello", "1.1.0", str(tmp_path / "h"))
    cli(d, "params", "set", "hello", "greeting_phrase", "Hej")

    def running():
        st = d.get("/api/v1/services/hello/status").json()
        return sorted((i["version"], i["pid"]) for i in st["instances"] if i["state"] == "running")
    before = running()
    assert [v for v, _ in before] == ["1.0.0", "1.1.0"], before
    d.kill9()
    d.start()
    assert wait_until(lambda: running() == before or None, 15, "both versions re-adopted")
    assert gw(d, "/default-hello/hello", json={"name": "Ada"}).json() == "Hej Ada"
    assert gw(d, "/default-hello@1.1.0/hello", json={"name": "Ada"}).json() == "Hej Ada"
    ls = cli(d, "ls").stdout
    assert re.search(r"^\*\s+hello\s+1\.0\.0\s+running", ls, re.M), ls
    # Killing the versions one by one, the last included, leaves nothing running.
    cli(d, "kill", "hello", "1.1.0", "--yes")
    cli(d, "kill", "hello", "--yes")
    wait_until(lambda: not instance_processes(d.data_dir), 30, "every instance stopped")
    assert gw(d, "/default-hello/hello", json={"name": "Ada"}).status_code in (404, 503)
    d.delete("/api/v1/services/hello")
