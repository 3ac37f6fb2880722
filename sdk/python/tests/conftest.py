"""Fixtures: services on free loopback ports, a fake platform, script runners."""

import os
import sys

import pytest

from support import (PLATFORM_VARS, SDK_DIR, FakePlatform, Process, Running, free_port,
                     wait_healthy)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """Every test starts as if run outside berth; tests set what they need."""
    for name in PLATFORM_VARS:
        monkeypatch.delenv(name, raising=False)


# -- in-process services ----------------------------------------------------------

@pytest.fixture
def serve():
    """serve(service) starts it on a free port and returns a Running; stopped at teardown."""
    started = []

    def start(service, root: str = ""):
        host, port = service.start(host="127.0.0.1", port=0)
        started.append(service)
        return Running(service, host, port, root)

    yield start
    for service in started:
        service.stop()


# -- a fake platform --------------------------------------------------------------

@pytest.fixture
def fake_platform(monkeypatch):
    """A FakePlatform with BERTH_URL and friends pointing at it."""
    platform = FakePlatform()
    monkeypatch.setenv("BERTH_URL", platform.url)
    monkeypatch.setenv("BERTH_TOKEN", "tok-123")
    monkeypatch.setenv("BERTH_PROJECT", "default")
    monkeypatch.setenv("BERTH_SERVICE", "hello")
    monkeypatch.setenv("BERTH_VERSION", "3")
    monkeypatch.setenv("BERTH_INSTANCE", "hello-3-a1")
    yield platform
    platform.close()


# -- services in a subprocess -----------------------------------------------------

@pytest.fixture
def run_script(tmp_path):
    """run_script(source, env=..., name=..., args=...) starts a service script.

    It gets HOST=127.0.0.1 and a free PORT unless env overrides them; the fixture
    waits for /~health (unless wait=False) and kills leftovers at teardown.
    """
    started: list[Process] = []

    def run(source: str, env: dict | None = None, name: str = "service.py",
            args: tuple = (), wait: bool = True, root: str = ""):
        script = tmp_path / name
        script.write_text(source)
        full_env = {k: v for k, v in os.environ.items() if k not in PLATFORM_VARS}
        full_env["PYTHONPATH"] = str(SDK_DIR)
        full_env.update({"HOST": "127.0.0.1", "PORT": str(free_port())})
        full_env.update(env or {})
        full_env = {k: v for k, v in full_env.items() if v is not None}
        p = Process([sys.executable, str(script), *args], full_env, tmp_path)
        p.base = f"http://127.0.0.1:{full_env.get('PORT', '')}"
        started.append(p)
        if wait:
            wait_healthy(p.base + root + "/~health", p)
        return p

    yield run
    for p in started:
        if p.proc.poll() is None:
            p.proc.kill()
            p.proc.wait()
