"""Test helpers: free ports, a fake platform, subprocess runners, HTTP clients.

Nothing here sleeps to wait: readiness and delivery are awaited with deadlines
(polling /~health, a Condition for requests the fake platform received, a queue
of the lines a subprocess printed).
"""

import json
import queue
import signal
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

SDK_DIR = Path(__file__).resolve().parent.parent
DEADLINE_S = 15.0

PLATFORM_VARS = ("HOST", "PORT", "CONTEXT_ROOT", "BERTH_URL", "BERTH_TOKEN", "BERTH_PROJECT",
                 "BERTH_SERVICE", "BERTH_VERSION", "BERTH_INSTANCE", "BERTH_PARAMETERS")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Running:
    """A started berth.Service and a requests session pointed at it."""

    def __init__(self, service, host, port, root=""):
        self.service = service
        self.base = f"http://{host}:{port}"
        self.root = root
        self.http = requests.Session()

    def url(self, path: str, prefixed: bool = True) -> str:
        return self.base + (self.root if prefixed else "") + path

    def get(self, path, **kw):
        return self.http.get(self.url(path), timeout=DEADLINE_S, **kw)

    def post(self, path, **kw):
        return self.http.post(self.url(path), timeout=DEADLINE_S, **kw)


class FakePlatform:
    """A tiny berth API: records every request and answers from `routes`.

    routes maps "METHOD /path" to a list of (status, json body) answers, used in
    order (the last one repeats); unknown routes answer 404 in the platform's shape.
    """

    def __init__(self):
        self.requests: list[dict] = []
        self.routes: dict[str, list] = {}
        self.gate: threading.Event | None = None  # when set, requests wait for it
        self._cond = threading.Condition()
        platform = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                if platform.gate is not None:
                    platform.gate.wait(DEADLINE_S)
                key = f"{self.command} {self.path}"
                with platform._cond:
                    answers = platform.routes.get(key)
                    if answers:
                        status, body = answers.pop(0) if len(answers) > 1 else answers[0]
                    else:
                        status, body = 404, {"error": {"code": "not_found",
                                                       "message": f"no route {key}"}}
                    platform.requests.append({
                        "method": self.command, "path": self.path,
                        "headers": dict(self.headers),
                        "json": json.loads(raw) if raw else None})
                    platform._cond.notify_all()
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _any

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True,
                                        kwargs={"poll_interval": 0.05})
        self._thread.start()

    def answer(self, route: str, *answers):
        with self._cond:
            self.routes[route] = list(answers)

    def wait_for(self, count: int, path: str | None = None) -> list[dict]:
        """Waits until `count` requests (to `path`, if given) arrived; returns them."""
        def matching():
            return [r for r in self.requests if path is None or r["path"] == path]
        deadline = time.monotonic() + DEADLINE_S
        with self._cond:
            while len(matching()) < count:
                left = deadline - time.monotonic()
                assert left > 0, f"expected {count} requests, got {matching()}"
                self._cond.wait(left)
            return matching()

    def close(self):
        if self.gate is not None:
            self.gate.set()
        self.server.shutdown()
        self.server.server_close()


class Process:
    """A script started with python3; its stdout lines are collected as they come."""

    def __init__(self, args, env, cwd):
        self.proc = subprocess.Popen(args, env=env, cwd=cwd, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, bufsize=1)
        self.lines: list[str] = []
        self._queue: queue.Queue = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_line(self, needle: str) -> str:
        """Waits for a line containing `needle` (lines already seen count too)."""
        for line in self.lines:
            if needle in line:
                return line
        deadline = time.monotonic() + DEADLINE_S
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"no line with {needle!r} in:\n" + "\n".join(self.lines)
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"process ended without printing {needle!r}:\n"
                                     + "\n".join(self.lines))
            self.lines.append(line)
            if needle in line:
                return line

    def stop(self, sig=signal.SIGTERM) -> int:
        """Sends `sig` (None: none, the process ends by itself), waits for the exit,
        collects the remaining output; returns the exit code."""
        if sig is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout=DEADLINE_S)
        self._reader.join(timeout=DEADLINE_S)
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                self.lines.append(line)
        return code


def wait_healthy(url: str, proc: Process | None = None) -> None:
    """Polls `url` until it answers 200 (the process must stay alive meanwhile)."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        if proc is not None and proc.proc.poll() is not None:
            proc.stop()
            raise AssertionError("the service exited early:\n" + "\n".join(proc.lines))
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        assert time.monotonic() < deadline, f"{url} never became healthy"
        time.sleep(0.05)
