"""The package itself: standard library only, the public names, embedding."""

import http.client
import json
import socket
import subprocess
import sys
import threading
import time

import pytest
import requests

import berth
from berth import Service
from support import SDK_DIR

PROBE = """
import json, sys, sysconfig
import berth
stdlib = sysconfig.get_paths()["stdlib"]
outside = sorted(name for name, m in sys.modules.items()
                 if getattr(m, "__file__", None)
                 and not m.__file__.startswith(stdlib)
                 and not m.__file__.startswith(sys.argv[1]))
print(json.dumps(outside))
"""


def test_importing_berth_loads_only_the_standard_library():
    run = subprocess.run([sys.executable, "-S", "-c", PROBE, str(SDK_DIR / "berth")],
                         env={"PYTHONPATH": str(SDK_DIR)}, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == []


def test_public_api():
    assert sorted(berth.__all__) == sorted([
        "Service", "notify", "Severity", "get_service", "get_services", "ServiceNotFound",
        "PlatformError"])
    for name in berth.__all__:
        assert getattr(berth, name).__doc__, f"{name} has no docstring"
    for method in ("add_parameter", "get_parameter", "set_parameter", "entrypoint", "run",
                   "start", "stop"):
        assert getattr(Service, method).__doc__, method


def test_run_in_a_thread_serves_until_stop(monkeypatch):
    monkeypatch.setenv("PORT", "0")  # any free port; service.address tells which
    service = Service()

    @service.entrypoint
    def ping() -> str:
        return "pong"

    runner = threading.Thread(target=service.run)
    runner.start()
    deadline = time.monotonic() + 10
    while service.address is None:
        assert time.monotonic() < deadline and runner.is_alive(), "run() did not start"
        time.sleep(0.01)
    host, port = service.address
    assert requests.post(f"http://{host}:{port}/ping", timeout=10).json() == "pong"
    service.stop()
    runner.join(10)
    assert not runner.is_alive() and service.address is None


def test_start_twice_is_refused():
    service = Service()
    service.start("127.0.0.1", 0)
    try:
        try:
            service.start("127.0.0.1", 0)
        except RuntimeError as e:
            assert "already running" in str(e)
        else:
            raise AssertionError("a second start() was accepted")
    finally:
        service.stop()


def test_stop_closes_idle_keep_alive_connections():
    service = Service()
    host, port = service.start("127.0.0.1", 0)
    conn = http.client.HTTPConnection(host, port, timeout=10)
    conn.request("GET", "/~health")
    assert conn.getresponse().read() == b'{"status": "ok"}\n'
    service.stop()
    # the server shut the idle connection: reading it gives EOF at once, not a hang
    assert conn.sock.recv(1) == b""
    conn.close()


def test_an_ipv6_host_is_served():
    if not socket.has_ipv6:
        pytest.skip("no IPv6 in this kernel")
    service = Service()
    try:
        host, port = service.start("::1", 0)
    except OSError as e:
        pytest.skip(f"cannot bind ::1 here: {e}")
    try:
        assert requests.get(f"http://[::1]:{port}/~health", timeout=10).json() == {"status": "ok"}
    finally:
        service.stop()
