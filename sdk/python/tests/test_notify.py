"""notify(): the payload the platform receives, retries, and never hurting user code."""

import logging
import os
import subprocess
import sys
import threading

import pytest

import berth
from berth import Service, Severity, notify
from berth import notifications
from support import SDK_DIR, free_port

PATH = "/api/v1/notifications"


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    monkeypatch.setattr(notifications._notifier, "backoff_s", (0.01, 0.02))
    yield
    assert notifications.flush(10), "notifications still queued after the test"


def test_the_payload_and_headers(fake_platform):
    fake_platform.answer(f"POST {PATH}", (201, {"id": 1}))
    notify(msg="disk almost full", severity=Severity.CRITICAL, emails=["ops@example.org"],
           timer=60)
    [req] = fake_platform.wait_for(1, PATH)
    assert req["method"] == "POST"
    assert req["headers"]["Authorization"] == "Bearer tok-123"
    assert req["headers"]["Content-Type"] == "application/json"
    assert req["json"] == {"message": "disk almost full", "severity": "CRITICAL",
                           "service": "hello", "version": "3", "instance": "hello-3-a1",
                           "emails": ["ops@example.org"], "timer": 60}


def test_defaults(fake_platform):
    fake_platform.answer(f"POST {PATH}", (201, {}))
    notify("hi")
    [req] = fake_platform.wait_for(1, PATH)
    assert req["json"]["severity"] == "INFO"
    assert req["json"]["emails"] == [] and req["json"]["timer"] == 0


def test_one_address_severity_names_and_whole_float_timers_are_accepted(fake_platform):
    fake_platform.answer(f"POST {PATH}", (201, {}))
    notify("x", severity="warning", emails="a@b.c", timer=30.0)
    [req] = fake_platform.wait_for(1, PATH)
    assert req["json"]["severity"] == "WARNING" and req["json"]["emails"] == ["a@b.c"]
    assert req["json"]["timer"] == 30 and isinstance(req["json"]["timer"], int)


@pytest.mark.parametrize("severity,level", [(Severity.INFO, logging.INFO),
                                            (Severity.WARNING, logging.WARNING),
                                            (Severity.CRITICAL, logging.CRITICAL)])
def test_every_notification_is_logged_at_its_level(caplog, severity, level):
    with caplog.at_level(logging.INFO):
        notify("something happened", severity=severity)
    [record] = [r for r in caplog.records if r.name == "berth.notify"]
    assert record.levelno == level
    assert record.getMessage() == f"notification ({severity.value}): something happened"


def test_without_berth_url_it_is_only_logged(caplog, monkeypatch):
    sent = []
    monkeypatch.setattr(notifications._notifier, "submit", lambda *a: sent.append(a))
    with caplog.at_level(logging.INFO):
        notify("local run")
    assert sent == []
    assert "notification (INFO): local run" in caplog.text


def test_the_seed_example_notifies_from_an_entrypoint(fake_platform, serve):
    fake_platform.answer(f"POST {PATH}", (201, {}))
    service = Service()
    service.add_parameter("greeting_phrase", "Hello")

    @service.entrypoint
    def hello(name: str) -> str:
        if name == "World":
            notify(msg="Someone is trying to greet the World, too time consuming. Skipping!",
                   severity=Severity.WARNING)
            return "Greeting failed"
        return f"{service.get_parameter('greeting_phrase')} {name}"

    svc = serve(service)
    assert svc.post("/hello", json={"name": "World"}).json() == "Greeting failed"
    [req] = fake_platform.wait_for(1, PATH)
    assert req["json"]["message"] == ("Someone is trying to greet the World, too time "
                                      "consuming. Skipping!")
    assert req["json"]["severity"] == "WARNING"


def test_server_errors_are_retried_twice(fake_platform, caplog):
    fake_platform.answer(f"POST {PATH}", (503, None), (500, None), (201, {}))
    with caplog.at_level(logging.WARNING, logger="berth.notify"):
        notify("flaky")
        assert notifications.flush(10)
    assert len(fake_platform.wait_for(3, PATH)) == 3
    assert "not delivered" not in caplog.text


def test_a_notification_that_cannot_be_delivered_is_a_warning(fake_platform, caplog):
    fake_platform.answer(f"POST {PATH}", (500, {"error": {"code": "internal",
                                                          "message": "store is down"}}))
    with caplog.at_level(logging.WARNING, logger="berth.notify"):
        notify("lost")
        assert notifications.flush(10)
    assert len(fake_platform.wait_for(3, PATH)) == 3
    [warning] = [r for r in caplog.records if "not delivered" in r.getMessage()]
    assert warning.levelno == logging.WARNING
    assert "'lost' was not delivered after 3 attempts" in warning.getMessage()
    assert "answered 500: store is down" in warning.getMessage()


def test_a_client_error_is_not_retried(fake_platform, caplog):
    fake_platform.answer(f"POST {PATH}", (401, {"error": {"code": "unauthenticated",
                                                          "message": "bad token"}}))
    with caplog.at_level(logging.WARNING, logger="berth.notify"):
        notify("denied")
        assert notifications.flush(10)
    assert len(fake_platform.requests) == 1
    assert "not delivered after 1 attempt: " in caplog.text and "bad token" in caplog.text


def test_an_unreachable_platform_is_a_warning_not_an_exception(monkeypatch, caplog):
    monkeypatch.setenv("BERTH_URL", f"http://127.0.0.1:{free_port()}")
    with caplog.at_level(logging.WARNING, logger="berth.notify"):
        notify("nobody listens")
        assert notifications.flush(10)
    assert "is unreachable" in caplog.text and "check BERTH_URL" in caplog.text


def test_a_full_queue_drops_instead_of_blocking(fake_platform, caplog):
    fake_platform.answer(f"POST {PATH}", (201, {}))
    fake_platform.gate = threading.Event()  # the platform hangs until the gate opens
    done = threading.Event()

    def flood():
        for i in range(notifications.QUEUE_SIZE + 5):
            notify(f"n{i}")
        done.set()

    with caplog.at_level(logging.WARNING, logger="berth.notify"):
        threading.Thread(target=flood, daemon=True).start()
        assert done.wait(10), "notify() blocked on a hanging platform"
        fake_platform.gate.set()
        assert notifications.flush(10)
    assert "dropping notification" in caplog.text
    delivered = len(fake_platform.requests)
    # one was being sent when the queue filled; the queue held QUEUE_SIZE more
    assert notifications.QUEUE_SIZE <= delivered <= notifications.QUEUE_SIZE + 1


@pytest.mark.parametrize("kwargs,error", [
    ({"severity": "urgent"}, ValueError), ({"severity": 2}, ValueError),
    ({"timer": -1}, ValueError), ({"timer": "5"}, ValueError), ({"timer": 1.5}, ValueError),
    ({"timer": 604801}, ValueError), ({"timer": True}, ValueError),
    ({"emails": [1]}, TypeError)])
def test_invalid_arguments_raise_at_the_call(kwargs, error):
    with pytest.raises(error):
        notify("x", **kwargs)


def test_the_public_names():
    assert berth.notify is notify and berth.Severity is Severity
    assert [s.name for s in Severity] == ["INFO", "WARNING", "CRITICAL"]


def test_a_script_that_notifies_and_ends_still_delivers(fake_platform, tmp_path):
    fake_platform.answer(f"POST {PATH}", (201, {}))
    script = tmp_path / "batch.py"
    script.write_text("from berth import notify\nnotify('batch done')\n")
    env = dict(os.environ, PYTHONPATH=str(SDK_DIR))
    run = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    [req] = fake_platform.wait_for(1, PATH)
    assert req["json"]["message"] == "batch done"
