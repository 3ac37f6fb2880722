"""A service as the platform runs it: a subprocess with HOST/PORT, logging to stdout,
stopped by SIGTERM."""

import datetime
import re
import signal
import threading

import pytest
import requests

from support import free_port, wait_healthy

SERVICE = '''
import logging, os, pathlib, time
from berth import Service, notify, Severity

service = Service()
logger = logging.getLogger(__name__)
service.add_parameter("greeting_phrase", "Hello")

@service.entrypoint
def hello(name: str) -> str:
    logger.info(f"Greeting someone with the name: {name}")
    return f"{service.get_parameter('greeting_phrase')} {name}"

@service.entrypoint
def fail() -> None:
    raise RuntimeError("the model file is missing")

@service.entrypoint
def slow(marker: str) -> str:
    logger.info("slow started")
    deadline = time.monotonic() + 10
    while not pathlib.Path(marker).exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return "finished"

@service.entrypoint
def shout() -> None:
    print("printed from user code")
    logger.warning("two\\nlines")

service.run()
'''

LINE = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z (DEBUG|INFO|WARNING|ERROR|CRITICAL) "
                  r"([\w.]+): (.*)")
ROOT = "/default-hello"
ENV = {"CONTEXT_ROOT": ROOT, "BERTH_SERVICE": "hello", "BERTH_VERSION": "2", "TZ": "Asia/Tokyo"}


@pytest.fixture
def proc(run_script):
    return run_script(SERVICE, env=ENV, root=ROOT)


def test_log_lines_are_utc_with_milliseconds_level_and_logger(proc):
    requests.post(proc.base + ROOT + "/hello", json={"name": "Ada"}, timeout=10)
    line = proc.wait_line("Greeting someone")  # arrives while running: stdout is line-buffered
    m = LINE.fullmatch(line)
    assert m, line
    assert m.group(2, 3, 4) == ("INFO", "__main__", "Greeting someone with the name: Ada")
    stamp = datetime.datetime.fromisoformat(m.group(1)).replace(tzinfo=datetime.timezone.utc)
    # TZ=Asia/Tokyo in the child: a local-time stamp would be 9 hours off
    assert abs(datetime.datetime.now(datetime.timezone.utc) - stamp) < datetime.timedelta(minutes=5)
    assert proc.stop() == 0
    for line in proc.lines:
        ok = LINE.fullmatch(line) or line.startswith("  ") or line == "printed from user code"
        assert ok, line


def test_startup_line_names_address_and_entrypoints(proc):
    line = proc.wait_line("serving hello on")
    port = proc.base.rsplit(":", 1)[1]
    assert f"INFO berth: serving hello on http://127.0.0.1:{port}{ROOT}/" in line
    assert f"POST {ROOT}/hello" in line and f"POST {ROOT}/fail" in line
    assert f"docs: {ROOT}/docs" in line


def test_access_log_one_line_per_request_but_not_health(proc):
    requests.post(proc.base + ROOT + "/hello", json={"name": "Ada"}, timeout=10)
    requests.post(proc.base + "/hello", json={"name": 3}, timeout=10)
    requests.get(proc.base + ROOT + "/nowhere", timeout=10)
    for _ in range(3):
        requests.get(proc.base + ROOT + "/~health", timeout=10)
        requests.get(proc.base + "/~health", timeout=10)
    proc.wait_line("GET /default-hello/nowhere 404")
    assert proc.stop() == 0
    access = [LINE.fullmatch(l).group(4) for l in proc.lines if " berth.access: " in l]
    assert len(access) == 3, access
    # Each line is written by its connection's thread once the answer is sent, so the next
    # request may be logged first: each request once, in any order.
    for pattern in (r"POST /default-hello/hello 200 \d+\.\d ms", r"POST /hello 422 \d+\.\d ms",
                    r"GET /default-hello/nowhere 404 \d+\.\d ms"):
        assert sum(bool(re.fullmatch(pattern, a)) for a in access) == 1, (pattern, access)
    assert not any("~health" in l for l in proc.lines)


def test_an_exception_logs_its_traceback_as_indented_continuation_lines(proc):
    r = requests.post(proc.base + ROOT + "/fail", json={}, timeout=10)
    assert r.status_code == 500
    assert r.json()["error"]["message"] == ("entrypoint 'fail' raised RuntimeError: "
                                            "the model file is missing")
    proc.wait_line("POST /default-hello/fail 500")
    head = proc.lines.index(proc.wait_line("entrypoint 'fail' raised RuntimeError"))
    assert LINE.fullmatch(proc.lines[head]).group(2, 3) == ("ERROR", "berth")
    rest = proc.lines[head + 1:]
    tb = rest[:next(i for i, l in enumerate(rest) if not l.startswith("  "))]
    assert tb[0] == "  Traceback (most recent call last):"
    assert tb[-1] == "  RuntimeError: the model file is missing"


def test_multi_line_messages_and_print_reach_the_log(proc):
    requests.post(proc.base + ROOT + "/shout", json={}, timeout=10)
    proc.wait_line("printed from user code")
    first = proc.wait_line("WARNING __main__: two")
    assert proc.lines.index(proc.wait_line("  lines")) == proc.lines.index(first) + 1


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_service_cleanly(proc, sig):
    assert proc.stop(sig) == 0
    assert any(l.endswith(f"INFO berth: received {sig.name}, stopping") for l in proc.lines)
    assert proc.lines[-1].endswith("INFO berth: stopped")
    assert not any("Traceback" in l for l in proc.lines)


def test_a_request_in_progress_finishes_before_the_process_exits(proc, tmp_path):
    marker = tmp_path / "release"
    result = {}

    def call():
        result["r"] = requests.post(proc.base + ROOT + "/slow", json={"marker": str(marker)},
                                    timeout=20)

    caller = threading.Thread(target=call)
    caller.start()
    proc.wait_line("slow started")
    proc.proc.send_signal(signal.SIGTERM)
    proc.wait_line("received SIGTERM")
    marker.write_text("go")
    caller.join(20)
    assert result["r"].status_code == 200 and result["r"].json() == "finished"
    # The one SIGTERM above is the stop: a second one could land after run() has put the
    # default handlers back, while the interpreter is still exiting.
    assert proc.stop(None) == 0
    assert proc.lines[-1].endswith("INFO berth: stopped")


def test_run_arguments_are_used_when_host_and_port_are_not_set(run_script):
    port = free_port()
    source = SERVICE.replace("service.run()", f"service.run(host='127.0.0.1', port={port})")
    p = run_script(source, env={"HOST": None, "PORT": None}, wait=False)
    wait_healthy(f"http://127.0.0.1:{port}/~health", p)
    assert p.stop() == 0


def test_host_and_port_from_the_environment_win_over_run_arguments(run_script):
    source = SERVICE.replace("service.run()", f"service.run(host='0.0.0.0', port={free_port()})")
    p = run_script(source)  # waits for health at $HOST:$PORT
    assert f"on http://127.0.0.1:{p.base.rsplit(':', 1)[1]}/" in p.wait_line("serving")
    assert p.stop() == 0


def test_a_taken_port_fails_with_a_clear_message(run_script, proc):
    port = proc.base.rsplit(":", 1)[1]
    p = run_script(SERVICE, env={"PORT": port}, wait=False)
    assert p.stop(None) != 0
    text = "\n".join(p.lines)
    assert f"cannot listen on 127.0.0.1:{port}" in text and "set HOST/PORT" in text


def test_a_bad_port_fails_with_a_clear_message(run_script):
    p = run_script(SERVICE, env={"PORT": "http"}, wait=False)
    assert p.stop(None) != 0
    assert "PORT='http' is not a port number" in "\n".join(p.lines)


def test_the_program_configured_logging_itself(run_script):
    source = ("import logging\n"
              "logging.basicConfig(level=logging.INFO, format='MINE %(message)s')\n" + SERVICE)
    p = run_script(source, env=ENV, root=ROOT)
    requests.post(p.base + ROOT + "/hello", json={"name": "Ada"}, timeout=10)
    assert p.wait_line("Greeting someone") == "MINE Greeting someone with the name: Ada"
    assert p.stop() == 0
