"""Seed 001 in C++: `berth init --lang cpp` writes the hello service on the C++ SDK, `berth
deploy` builds it at push time (find_package(berth_sdk) through the CMAKE_PREFIX_PATH berth
sets) and runs it; then the same story as in Python: entrypoint, parameter on every replica and
after a restart, notification, logs, docs, a shadow version, assign without a failed request,
kill."""
import re

import pytest

from conftest import assert_native_error, instance_processes, wait_until
from test_versions import assign_under_load, cli, every_replica_answers, gw, restart_one_replica


@pytest.fixture(scope="module")
def hello_cpp(daemon, tmp_path_factory):
    root = tmp_path_factory.mktemp("cpp")
    src = root / "hello"
    out = cli(daemon, "init", str(src), "--lang", "cpp").stdout
    assert "C++" in out, out
    for f in ("service.cc", "CMakeLists.txt", "berth.yaml", "README.md", "test_service.py"):
        assert (src / f).exists(), f
    (root / "replicas.yaml").write_text("replicas: 2\n")
    p = cli(daemon, "deploy", "hello", "1.0.0", str(src), "-f", str(root / "replicas.yaml"),
            timeout=600)
    yield {"root": root, "dir": src, "deploy": p}
    daemon.delete("/api/v1/services/hello")
    wait_until(lambda: not instance_processes(daemon.data_dir), 30, "every instance stopped")


def test_cpp_hello_runs_like_the_seed(daemon, hello_cpp):
    p = hello_cpp["deploy"]
    assert re.search(r"^\*\s+hello\s+1\.0\.0\s+running\s+Running \(since", p.stdout, re.M), \
        p.stdout + p.stderr
    r = gw(daemon, "/default-hello/hello", json={"name": "Ada"})
    assert r.status_code == 200 and r.json() == "Hello Ada", r.text
    r = gw(daemon, "/default-hello/hello", json={"name": 7})
    assert r.status_code == 422 and "name" in r.json()["error"]["message"], r.text
    r = gw(daemon, "/default-hello/nope", json={})
    assert r.status_code == 404, r.text


def test_cpp_parameter_on_every_replica_and_after_a_restart(daemon, hello_cpp):
    r = daemon.post("/api/v1/services/hello/parameters/greeting_phrase", json={"value": "Bonjour"})
    assert r.status_code == 200 and r.json()["instances"] == 2, r.text
    every_replica_answers(daemon, "hello", "Bonjour Ada")
    restart_one_replica(daemon, "hello")
    every_replica_answers(daemon, "hello", "Bonjour Ada")
    r = daemon.post("/api/v1/services/hello/parameters/greeting_phrase", json={"value": 1})
    assert r.status_code == 422, r.text
    assert_native_error(daemon.post("/api/v1/services/hello/parameters/nope", json={"value": 1}),
                        404)


def test_cpp_notification_logs_and_docs(daemon, hello_cpp):
    for _ in range(2):
        assert gw(daemon, "/default-hello/hello", json={"name": "World"}).json() == "Greeting failed"

    def counted():
        ns = daemon.get("/api/v1/notifications?service=hello").json()["notifications"]
        return [n for n in ns if "greet the World" in n["message"] and n["count"] >= 2]
    n = wait_until(counted, 15, "the World notification counted twice")[0]
    assert n["severity"] == "WARNING" and n["version"] == "1.0.0", n

    def logged():
        out = cli(daemon, "logs", "hello", "1.0.0", "-n", "200").stdout
        return out if "Greeting someone with the name: Ada" in out else None
    assert re.search(r"INFO .*Greeting someone with the name: Ada",
                     wait_until(logged, 15, "the greeting in the logs"))
    spec = gw(daemon, "/default-hello/openapi.json", method="GET").json()
    hello_path = next(p for p in spec["paths"] if p.endswith("/hello"))
    assert '"name"' in str(spec["paths"][hello_path]).replace("'", '"'), spec["paths"][hello_path]
    page = gw(daemon, "/default-hello/docs", method="GET")
    assert page.status_code == 200 and "<html" in page.text.lower()


def test_cpp_shadow_assign_and_kill(daemon, hello_cpp):
    v2 = hello_cpp["root"] / "hello2"
    cli(daemon, "init", str(v2), "--lang", "cpp")
    code = (v2 / "service.cc").read_text()
    assert 'greeting_phrase + " " + name' in code, code
    (v2 / "service.cc").write_text(code.replace('greeting_phrase + " " + name',
                                                'greeting_phrase + " " + name + " (v2)"'))
    cli(daemon, "deploy", "hello", "1.1.0", str(v2), timeout=600)
    assert gw(daemon, "/default-hello/hello", json={"name": "Ada"}).json() == "Bonjour Ada"
    assert gw(daemon, "/default-hello@1.1.0/hello", json={"name": "Ada"}).json() == \
        "Bonjour Ada (v2)"
    answers = assign_under_load(daemon, "hello", "1.1.0", "Bonjour Ada (v2)")
    assert answers == {"Bonjour Ada", "Bonjour Ada (v2)"}, answers
    cli(daemon, "kill", "hello", "1.0.0", "--yes")
    ls = cli(daemon, "ls", "hello").stdout
    assert "1.0.0" not in ls and re.search(r"^\*\s+hello\s+1\.1\.0", ls, re.M), ls
