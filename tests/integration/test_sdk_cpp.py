"""Seed 001 in C++: `berth init --lang cpp` writes the hello service on the C++ SDK, `berth
deploy` builds it at push time (find_package(berth_sdk) through the CMAKE_PREFIX_PATH berth
sets) and runs it; entrypoint, parameter, notification, logs and docs work as in Python."""
import re
import subprocess

import pytest
import requests

from conftest import HTTP_TIMEOUT, assert_native_error, instance_processes, wait_until
from test_versions import cli, gw


@pytest.fixture(scope="module")
def hello_cpp(daemon, tmp_path_factory):
    src = tmp_path_factory.mktemp("cpp") / "hello"
    out = cli(daemon, "init", str(src), "--lang", "cpp").stdout
    assert "C++" in out, out
    for f in ("service.cc", "CMakeLists.txt", "berth.yaml", "README.md"):
        assert (src / f).exists(), f
    p = cli(daemon, "deploy", "hello", "1.0.0", str(src), timeout=600)
    yield {"dir": src, "deploy": p}
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


def test_cpp_parameter_notification_logs_and_docs(daemon, hello_cpp):
    r = daemon.post("/api/v1/services/hello/parameters/greeting_phrase", json={"value": "Bonjour"})
    assert r.status_code == 200 and r.json()["instances"] == 1, r.text
    assert gw(daemon, "/default-hello/hello", json={"name": "Ada"}).json() == "Bonjour Ada"
    r = daemon.post("/api/v1/services/hello/parameters/greeting_phrase", json={"value": 1})
    assert r.status_code == 422, r.text
    assert_native_error(daemon.post("/api/v1/services/hello/parameters/nope", json={"value": 1}),
                        404)
    for _ in range(2):
        assert gw(daemon, "/default-hello/hello", json={"name": "World"}).json() == "Greeting failed"

    def counted():
        ns = daemon.get("/api/v1/notifications?service=hello").json()["notifications"]
        return [n for n in ns if "greet the World" in n["message"] and n["count"] >= 2]
    n = wait_until(counted, 15, "the World notification counted twice")[0]
    assert n["severity"] == "WARNING", n

    def logged():
        out = cli(daemon, "logs", "hello", "1.0.0", "-n", "200").stdout
        return out if "Greeting someone with the name: Ada" in out else None
    assert re.search(r"INFO .*Greeting someone with the name: Ada",
                     wait_until(logged, 15, "the greeting in the logs"))
    spec = gw(daemon, "/default-hello/openapi.json", method="GET").json()
    assert any(p.endswith("/hello") for p in spec["paths"]), spec["paths"]
    page = gw(daemon, "/default-hello/docs", method="GET")
    assert page.status_code == 200 and "<html" in page.text.lower()
