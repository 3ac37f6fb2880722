"""End-to-end test of the service: builds it if ./build/hello is missing, starts it on a free
port as berth would (HOST, PORT, CONTEXT_ROOT), and calls it over HTTP.

    /usr/bin/python3 -m pytest test_service.py
"""
import json
import os
import pathlib
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

HERE = pathlib.Path(__file__).resolve().parent
BINARY = HERE / "build" / "hello"
CONTEXT_ROOT = "/default-hello"


def build():
    if BINARY.exists():
        return
    subprocess.run(["cmake", "-S", str(HERE), "-B", str(HERE / "build"), "-G", "Ninja",
                    "-DCMAKE_BUILD_TYPE=Release"], check=True)
    subprocess.run(["cmake", "--build", str(HERE / "build")], check=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(url, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data, method="GET" if data is None else "POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    build()
    port = free_port()
    env = dict(os.environ, HOST="127.0.0.1", PORT=str(port), CONTEXT_ROOT=CONTEXT_ROOT,
               BERTH_SERVICE="hello")
    env.pop("BERTH_URL", None)
    env.pop("BERTH_PARAMETERS", None)
    log = tmp_path_factory.mktemp("hello") / "service.log"
    with open(log, "w") as out:
        process = subprocess.Popen([str(BINARY)], env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}{CONTEXT_ROOT}"
    deadline = time.monotonic() + 10
    while True:
        try:
            if call(url, "/~health")[0] == 200:
                break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail("the service did not start:\n" + log.read_text())
        time.sleep(0.05)
    yield url
    process.terminate()
    assert process.wait(timeout=10) == 0, log.read_text()


def test_hello(service):
    assert call(service, "/hello", {"name": "Ada"}) == (200, "Hello Ada")


def test_changed_greeting_phrase(service):
    status, body = call(service, "/~parameters/greeting_phrase", {"value": "Bonjour"})
    assert status == 200 and body == {"name": "greeting_phrase", "value": "Bonjour"}
    try:
        assert call(service, "/hello", {"name": "Ada"}) == (200, "Bonjour Ada")
    finally:
        call(service, "/~parameters/greeting_phrase", {"value": "Hello"})


def test_greeting_the_world_is_skipped(service):
    assert call(service, "/hello", {"name": "World"}) == (200, "Greeting failed")


def test_wrong_argument_type(service):
    status, body = call(service, "/hello", {"name": 5})
    assert status == 422
    assert body["error"]["message"] == "argument 'name': expected string, got number"


def test_docs(service):
    status, spec = call(service, "/openapi.json")
    assert status == 200 and "/hello" in spec["paths"]
