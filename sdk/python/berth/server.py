"""The HTTP/1.1 server: sockets, bodies, keep-alive, access log, graceful stop.

One thread per connection (ThreadingHTTPServer), which suits entrypoints that
block on I/O or release the GIL in native code. Stopping first refuses new
connections, then lets requests in progress finish (up to a grace period),
then closes idle keep-alive connections so no thread is left reading.
"""

import json
import logging
import socket
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from . import http_head
from .app import App, Request, Response, error, relative_path

access_log = logging.getLogger("berth.access")
log = logging.getLogger("berth")

MAX_BODY = 16 * 1024 * 1024
IDLE_TIMEOUT_S = 120  # an idle keep-alive connection is closed after this


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "berth-python"
    timeout = IDLE_TIMEOUT_S
    server: "HttpServer"

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def parse_request(self) -> bool:
        # http.server reads the head itself; its raw lines are checked before anything is
        # served (see http_head), and a malformed head is a 400 that closes the connection.
        rfile, recorder = self.rfile, http_head.LineRecorder(self.rfile)
        self.rfile = recorder
        try:
            ok = super().parse_request()
        finally:
            self.rfile = rfile
        if not ok:
            return False
        why = http_head.check_request_head(self.raw_requestline, recorder.lines)
        if why is not None:
            self.send_error(400, f"malformed request: {why}")
            return False
        return True

    def _serve(self) -> None:
        start = time.monotonic()
        self.server.enter()
        try:
            body = self._read_body()
            if isinstance(body, Response):
                response = body
            else:
                response = self.server.app.handle(Request(self.command, self.path, body))
            if self.server.stopping:
                self.close_connection = True
            self._send(response)
        except OSError as e:  # the client went away or stalled; nobody is left to answer
            self.close_connection = True
            log.debug("connection from %s lost: %s", self.client_address[0], e)
            return
        finally:
            self.server.leave()
        path = self.path.partition("?")[0]
        if relative_path(path, self.server.app.context_root) != "/~health":
            ms = (time.monotonic() - start) * 1000
            access_log.info("%s %s %d %.1f ms", self.command, path, response.status, ms)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

    def _read_body(self) -> bytes | Response:
        if self.headers.get("Transfer-Encoding") is not None:  # chunked: see parse_request
            return self._read_chunked()
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            return b""
        try:
            length = int(length_text)
            if length < 0:
                raise ValueError
        except ValueError:
            self.close_connection = True
            return error(400, "bad_request", f"invalid Content-Length {length_text!r}")
        if length > MAX_BODY:
            self.close_connection = True  # the unread body would be taken for the next request
            return error(413, "payload_too_large",
                         f"the request body is {length} bytes; the limit is {MAX_BODY}")
        return self.rfile.read(length)

    def _read_chunked(self) -> bytes | Response:
        chunks, total = [], 0
        while True:
            size = http_head.chunk_size(self.rfile.readline(1024))
            if size is None:
                return self._bad_body("a malformed chunk-size line")
            if size == 0:
                while (line := self.rfile.readline(1024)) != b"\r\n":  # trailers
                    if not http_head.is_trailer_line(line):
                        return self._bad_body("a malformed trailer line")
                return b"".join(chunks)
            total += size
            if total > MAX_BODY:
                self.close_connection = True
                return error(413, "payload_too_large",
                             f"the request body exceeds the limit of {MAX_BODY} bytes")
            chunks.append(self.rfile.read(size))
            if self.rfile.read(2) != b"\r\n":
                return self._bad_body("a chunk not followed by CRLF")

    def _bad_body(self, why: str) -> Response:
        self.close_connection = True
        return error(400, "bad_request", f"malformed chunked request body: {why}")

    def _send(self, r: Response) -> None:
        self.send_response(r.status)
        self.send_header("Content-Type", r.content_type)
        self.send_header("Content-Length", str(len(r.body)))
        for name, value in r.headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        # Head and body in one write: two small writes meet Nagle's algorithm and the peer's
        # delayed ACK, which costs 40 ms per response on a keep-alive connection.
        self._headers_buffer.append(b"\r\n")
        if self.command != "HEAD":
            self._headers_buffer.append(r.body)
        self.flush_headers()

    def send_error(self, code, message=None, explain=None):
        """Errors found by http.server itself (bad request line, ...) as JSON too."""
        self.close_connection = True
        if self.request_version == "HTTP/0.9":  # unparsable request line: answer HTTP/1.1
            self.request_version = "HTTP/1.1"
        text = message or self.responses.get(code, ("error",))[0]
        body = json.dumps({"error": {"code": "bad_request" if code < 500 else "internal",
                                     "message": text}}).encode()
        try:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD" and code >= 200 and code not in (204, 304):
                self.wfile.write(body)
        except OSError:
            pass

    def log_request(self, code="-", size="-"):
        pass  # the access log line is written by _serve, once the duration is known

    def log_message(self, format, *args):
        log.debug("http: " + format, *args)


class HttpServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that counts requests in flight and tracks open connections."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: App):
        self.app = app
        self.stopping = False
        self._busy = 0
        self._idle = threading.Condition()
        self._connections: set[socket.socket] = set()
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, _Handler)

    def server_bind(self):
        # HTTPServer.server_bind would resolve the host's name (socket.getfqdn), which
        # for an instance's loopback address can wait seconds on an unreachable DNS.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def enter(self) -> None:
        with self._idle:
            self._busy += 1

    def leave(self) -> None:
        with self._idle:
            self._busy -= 1
            self._idle.notify_all()

    def process_request(self, request, client_address):
        with self._idle:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self._idle:
            self._connections.discard(request)
        super().shutdown_request(request)

    def stop(self, grace_s: float) -> bool:
        """Stops serving; returns False if requests were still running after `grace_s`."""
        self.stopping = True
        self.shutdown()  # serve_forever returns: no new connections are accepted
        deadline = time.monotonic() + grace_s
        with self._idle:
            while self._busy and time.monotonic() < deadline:
                self._idle.wait(deadline - time.monotonic())
            drained = self._busy == 0
            connections = list(self._connections)
        for conn in connections:  # wakes handler threads blocked reading an idle connection
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.server_close()
        return drained
