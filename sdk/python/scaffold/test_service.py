"""Runs service.py the way berth does and talks to it over HTTP.

    python3 -m pytest test_service.py

The berth SDK must be importable: berth sets PYTHONPATH for deployed services;
elsewhere set PYTHONPATH (or BERTH_SDK_PYTHON) to the SDK's sdk/python folder.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = "/default-hello"

SDK = os.environ.get("BERTH_SDK_PYTHON")
if SDK and SDK not in sys.path:
    sys.path.insert(0, SDK)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(url: str, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture
def base():
    """Starts service.py on a free port and yields its URL; stops it afterwards."""
    port = free_port()
    env = dict(os.environ, HOST="127.0.0.1", PORT=str(port), CONTEXT_ROOT=ROOT)
    if SDK:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [SDK, env.get("PYTHONPATH")]))
    env.pop("BERTH_URL", None)  # notifications are only logged in this test
    proc = subprocess.Popen([sys.executable, "service.py"], cwd=HERE, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}{ROOT}"
    deadline = time.monotonic() + 15
    while True:
        if proc.poll() is not None:
            pytest.fail("service.py exited early:\n" + proc.stdout.read())
        try:
            if call(url + "/~health") == {"status": "ok"}:
                break
        except (urllib.error.URLError, ConnectionError):
            pass
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("service.py did not become healthy:\n" + proc.communicate()[0])
        time.sleep(0.05)
    yield url
    proc.send_signal(signal.SIGTERM)
    output = proc.communicate(timeout=15)[0]
    assert proc.returncode == 0, output


def test_hello_greets_with_the_parameter(base):
    assert call(base + "/hello", {"name": "Ada"}) == "Hello Ada"
    assert call(base + "/~parameters/greeting_phrase", {"greeting_phrase": "Bonjour"}) == \
        {"name": "greeting_phrase", "value": "Bonjour"}
    assert call(base + "/hello", {"name": "Ada"}) == "Bonjour Ada"


def test_greeting_the_world_is_skipped(base):
    assert call(base + "/hello", {"name": "World"}) == "Greeting failed"


def test_a_wrong_argument_is_refused(base):
    with pytest.raises(urllib.error.HTTPError) as e:
        call(base + "/hello", {"name": 42})
    assert e.value.code == 422
