"""berth's gateway end to end: requests to /<project>-<service>/... on the daemon's own listener
reach the service's ready instances.

Each test deploys a small standard-library Python server (APP below, pushed as a bundle) through
a real `berth serve`, and talks to it only through the daemon's address, as a user would: path
rewriting (preserve / strip), pinned revisions, authentication (bearer token, login cookie,
public), error answers (404, 503, 401, 403, 408, 431), streamed uploads and downloads (1 GiB,
chunked, server-sent events), websockets, keep-alive, rolling updates without a failed request,
and the Prometheus metrics.

Everything polls with a deadline; no fixed sleep decides a result (the slowloris test waits for
the daemon's 10 s header timeout by design). Every service is deleted after its test.

Run with Debian's interpreter:
    BERTH_BIN=build/src/berth/berth /usr/bin/python3 -m pytest -q tests/integration/test_gateway.py
"""
import asyncio
import hashlib
import http.client
import json
import os
import re
import select
import socket
import struct
import threading
import time

import pytest
import requests
import websockets

from conftest import assert_native_error, create_project, create_token, wait_until
# The runtime tests' helpers: new_service creates a service (a test_runtime.Service) on
# the module's daemon and (with track) deletes it and reaps its processes after the test.
from test_runtime import new_service, next_port, tarball, track  # noqa: F401 (fixtures)

# The backend: answers everything on HOST/PORT given in argv (from $(HOST) $(PORT)).
#   /upload  reads the body (Content-Length or chunked), answers its byte count and sha256
#   /sse     ?n=&delay=&mode=chunked|eof: server-sent events, flushed one by one
#   /ws      a websocket echo (handshake, unmasking, 7/16/64-bit lengths, ping, close)
#   /slow    ?t=: sleeps t seconds, then echoes
#   anything else: echoes path, method, headers, body, environment bits and its peer as JSON
# Paths are matched after removing $BASE_PATH_PREFIX, so the same program serves both base-path
# modes; "path" in the echo is exactly what the instance received.
APP = r'''
import base64, hashlib, http.server, json, os, struct, sys, time, urllib.parse

HOST, PORT = sys.argv[1], int(sys.argv[2])
ARGS = sys.argv[3:]
PREFIX = os.environ.get("BASE_PATH_PREFIX", "")
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def split(self):
        u = urllib.parse.urlsplit(self.path)
        path = u.path
        if PREFIX and (path == PREFIX or path.startswith(PREFIX + "/")):
            path = path[len(PREFIX):] or "/"
        return path, dict(urllib.parse.parse_qsl(u.query))

    def body_chunks(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise EOFError("end of stream in a chunk size line")
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return
                left = size
                while left:
                    data = self.rfile.read(min(left, 1 << 20))
                    if not data:
                        raise EOFError("end of stream in a chunk")
                    left -= len(data)
                    yield data
                if self.rfile.readline(3) not in (b"\r\n", b"\n"):
                    raise ValueError("chunk not followed by CRLF")
        else:
            left = int(self.headers.get("Content-Length") or 0)
            while left:
                data = self.rfile.read(min(left, 1 << 20))
                if not data:
                    raise EOFError("end of stream in the body")
                left -= len(data)
                yield data

    def reply(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def handle_any(self):
        path, query = self.split()
        if path == "/upload":
            return self.upload()
        if path == "/sse":
            return self.sse(query)
        if path == "/ws":
            return self.ws()
        if path == "/slow":
            time.sleep(float(query.get("t", "0.5")))
        body = b"".join(self.body_chunks())
        self.reply(200, {
            "path": self.path, "method": self.command,
            "headers": [[k, v] for k, v in self.headers.items()],
            "body": body.decode("utf-8", "replace"),
            "version": os.environ.get("BERTH_VERSION"), "tag": os.environ.get("TAG"),
            "bundle": os.environ.get("BUNDLE"), "instance": os.environ.get("BERTH_INSTANCE"),
            "base_path_prefix": os.environ.get("BASE_PATH_PREFIX"),
            "app_url": os.environ.get("APP_URL"), "args": ARGS,
            "peer": "%s:%d" % self.client_address[:2],
        })

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = handle_any

    def upload(self):
        h = hashlib.sha256()
        n = 0
        for data in self.body_chunks():
            h.update(data)
            n += len(data)
        self.reply(200, {"count": n, "sha256": h.hexdigest(),
                         "chunked": "chunked" in self.headers.get("Transfer-Encoding", "")})

    def sse(self, query):
        n = int(query.get("n", "5"))
        delay = float(query.get("delay", "0.3"))
        chunked = query.get("mode", "chunked") == "chunked"
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Connection", "close")  # the body ends when the connection does
        self.end_headers()
        for i in range(n):
            ev = ("id: %d\ndata: event %d\n\n" % (i, i)).encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(ev), ev) if chunked else ev)
            if i + 1 < n:
                time.sleep(delay)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")

    def ws(self):
        key = self.headers.get("Sec-WebSocket-Key", "")
        if self.headers.get("Upgrade", "").lower() != "websocket" or not key:
            return self.reply(400, {"error": "not a websocket handshake",
                                    "headers": [[k, v] for k, v in self.headers.items()]})
        accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        self.send_response(101, "Switching Protocols")
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.close_connection = True

        def read(n):
            data = self.rfile.read(n)
            if len(data) < n:
                raise EOFError
            return data

        def send(op, payload):
            n = len(payload)
            if n < 126:
                hdr = struct.pack("!BB", 0x80 | op, n)
            elif n < 65536:
                hdr = struct.pack("!BBH", 0x80 | op, 126, n)
            else:
                hdr = struct.pack("!BBQ", 0x80 | op, 127, n)
            self.wfile.write(hdr + payload)

        try:
            while True:
                b1, b2 = read(2)
                op, n = b1 & 0x0F, b2 & 0x7F
                if n == 126:
                    n = struct.unpack("!H", read(2))[0]
                elif n == 127:
                    n = struct.unpack("!Q", read(8))[0]
                mask = read(4) if b2 & 0x80 else b"\0\0\0\0"
                raw = read(n)
                data = bytes(b ^ mask[i % 4] for i, b in enumerate(raw))
                if op == 8:
                    send(8, data[:2])
                    return
                if op == 9:
                    send(10, data)
                elif op in (1, 2):
                    send(op, data)
        except (EOFError, OSError):
            return


class S(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


srv = S((HOST, PORT), H)
print("serving on %s:%d" % (HOST, PORT), flush=True)
srv.serve_forever()
'''


def bundle(name="v1"):
    """The backend as a bundle; berth.yaml sets BUNDLE=<name> and passes the address and a
    $BASE_PATH_PREFIX argument on the command line."""
    return tarball({
        "berth.yaml": 'command: ["python3", "app.py", "$(HOST)", "$(PORT)", '
                      '"$BASE_PATH_PREFIX/from-argv"]\n'
                      f'env:\n  BUNDLE: {name}\n',
        "app.py": APP,
    })


def prefix(svc):
    return f"/default-{svc.name}"


def gw(svc, path="/", method="GET", token=None, **kw):
    """A request through the gateway; `token` defaults to the admin token, "" sends none."""
    return svc.d.request(method, prefix(svc) + path, token=token, **kw)


def wait_status(svc, path, status, timeout, what):
    """Polls a gateway path until it answers `status`; the failure shows the last answer."""
    last = {}

    def check():
        r = gw(svc, path)
        last["r"] = r
        return r.status_code == status  # not r itself: a Response of 4xx/5xx is falsy
    try:
        wait_until(check, timeout, what, interval=0.05)
        return last["r"]
    except AssertionError as e:
        r = last["r"]
        raise AssertionError(f"{e}; last answer to {prefix(svc)}{path}: {r.status_code} "
                             f"{r.text[:300]}\nstatus: {json.dumps(svc.status())[:3000]}")


def wait_routed(svc, path="/", timeout=20):
    """Waits until the gateway answers 200 for the service (its first instance is ready and
    routed); returns the echo."""
    last = {}

    def ok():
        r = gw(svc, path)
        last["r"] = r
        return r.json() if r.status_code == 200 else None
    try:
        return wait_until(ok, timeout, f"{prefix(svc)}{path} to answer 200", interval=0.05)
    except AssertionError as e:
        r = last.get("r")
        raise AssertionError(f"{e}; last answer: {r.status_code if r is not None else None} "
                             f"{r.text[:300] if r is not None else ''}\n"
                             f"status: {json.dumps(svc.status(), indent=1)[:3000]}")


def deploy(new_service, prefix_name="gw", **definition):
    """A service of the backend bundle (tag v1), routed and answering; returns its Service."""
    svc = new_service(prefix_name)
    svc.push("v1", bundle("v1"))
    svc.define({"container-tag": "v1", "container-port": next_port(), **definition})
    wait_routed(svc)
    return svc


def header_values(echo, name):
    return [v for k, v in echo["headers"] if k.lower() == name.lower()]


def daemon_pid(d):
    return json.loads((d.data_dir / "daemon.json").read_text())["pid"]


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        m = re.search(r"VmRSS:\s+(\d+) kB", f.read())
    return int(m.group(1)) * 1024


def daemon_addr(d):
    host, port = d.url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def connect(d, timeout=10):
    s = socket.create_connection(daemon_addr(d), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


class RawResponse:
    def __init__(self, status, head, body):
        self.status = status
        self.head = head      # the head as text
        self.body = body

    def header(self, name):
        for line in self.head.split("\r\n")[1:]:
            k, _, v = line.partition(":")
            if k.strip().lower() == name.lower():
                return v.strip()
        return None


def read_response(sock, buf=b"", timeout=10, head_only=False):
    """Reads one response (Content-Length, chunked or until EOF) from `sock`; returns it and
    the bytes after it."""
    sock.settimeout(timeout)

    def more():
        data = sock.recv(65536)
        if not data:
            raise EOFError("connection closed")
        return data
    while b"\r\n\r\n" not in buf:
        buf += more()
    head, _, buf = buf.partition(b"\r\n\r\n")
    head = head.decode("latin-1")
    status = int(head.split(" ", 2)[1])
    resp = RawResponse(status, head, b"")
    length = resp.header("Content-Length")
    if head_only:
        pass
    elif length is not None:
        n = int(length)
        while len(buf) < n:
            buf += more()
        resp.body, buf = buf[:n], buf[n:]
    elif "chunked" in (resp.header("Transfer-Encoding") or "").lower():
        body = b""
        while True:
            while b"\r\n" not in buf:
                buf += more()
            line, _, buf = buf.partition(b"\r\n")
            size = int(line.split(b";")[0], 16)
            while len(buf) < size + 2:
                buf += more()
            body += buf[:size]
            buf = buf[size + 2:]
            if size == 0:
                break
        resp.body = body
    elif status not in (101, 204, 304):
        while True:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            buf += data
        resp.body, buf = buf, b""
    return resp, buf


def raw_request(method, path, host="berth.test", headers=(), body=b""):
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", *headers]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def auth_header(d):
    return f"Authorization: Bearer {d.admin_token}"


# --- 1. base-path: preserve and strip; forwarded headers ------------------------------------

def test_preserve_and_strip_paths_and_forwarded_headers(daemon, new_service):
    keep = deploy(new_service, "keep",
                  environment=[{"name": "APP_URL",
                                "value": "http://example.test$BASE_PATH_PREFIX/app"}])
    strip = deploy(new_service, "strip", **{
        "base-path": "strip",
        "command": ["python3", "app.py", "$(HOST)", "$(PORT)", "cmd:$BASE_PATH_PREFIX"]})

    # preserve (the default): the instance sees the whole path.
    e = gw(keep, "/a/b?q=1").json()
    assert e["path"] == f"{prefix(keep)}/a/b?q=1", e
    assert gw(keep, "").json()["path"] == prefix(keep)
    assert gw(keep, "/").json()["path"] == f"{prefix(keep)}/"
    assert gw(keep, "?x=y").json()["path"] == f"{prefix(keep)}?x=y"
    # $BASE_PATH_PREFIX in env values and the bundle's command; the variable itself.
    assert e["base_path_prefix"] == prefix(keep), e
    assert e["app_url"] == f"http://example.test{prefix(keep)}/app", e
    assert e["args"] == [f"{prefix(keep)}/from-argv"], e

    # strip: the instance sees the rest, "/" at least.
    e = gw(strip, "/a/b?q=1").json()
    assert e["path"] == "/a/b?q=1", e
    assert gw(strip, "").json()["path"] == "/"
    assert gw(strip, "/").json()["path"] == "/"
    assert gw(strip, "?q=1").json()["path"] == "/?q=1"
    # The bare prefix of a strip route is sent to its directory, where relative links work.
    for path, where in (("", "/"), ("?q=1", "/?q=1"), ("@1", "@1/")):
        r = gw(strip, path, allow_redirects=False)
        assert r.status_code == 301 and r.headers["Location"] == prefix(strip) + where, r.headers
    assert gw(strip, "", method="POST", data=b"x").json()["path"] == "/"  # only GET and HEAD
    assert gw(keep, "", allow_redirects=False).status_code == 200  # preserve: the app decides
    assert e["base_path_prefix"] == prefix(strip), e
    assert e["args"] == [f"cmd:{prefix(strip)}"], e
    # Pinned to the live revision, both modes: "@1" is not part of what the instance sees.
    assert gw(strip, "@1/a/b?q=1").json()["path"] == "/a/b?q=1"
    assert gw(keep, "@1/a/b?q=1").json()["path"] == f"{prefix(keep)}/a/b?q=1"
    # A longer name is another service, not a sub-path.
    assert_native_error(daemon.get(prefix(keep) + "x/a"), 404,
                        contains=f"no service is deployed at {prefix(keep)}x")

    # Method and body pass; forwarded headers are set by berth, not taken from the client.
    r = gw(keep, "/form", method="POST", data=b"hello body",
           headers={"Cookie": "a=1; berth_token=not-for-the-app; b=2",
                    "X-Forwarded-For": "6.6.6.6", "X-Forwarded-Host": "evil.example",
                    "X-Forwarded-Prefix": "/evil", "X-Custom": "kept"})
    assert r.status_code == 200, r.text
    e = r.json()
    assert e["method"] == "POST" and e["body"] == "hello body", e
    host, port = daemon_addr(daemon)
    assert header_values(e, "X-Forwarded-For") == ["127.0.0.1"], e["headers"]
    assert header_values(e, "X-Forwarded-Proto") == ["http"], e["headers"]
    assert header_values(e, "X-Forwarded-Host") == [f"{host}:{port}"], e["headers"]
    assert header_values(e, "X-Forwarded-Prefix") == [prefix(keep)], e["headers"]
    assert header_values(e, "Host") == [f"{host}:{port}"], e["headers"]
    assert header_values(e, "X-Custom") == ["kept"], e["headers"]
    # berth's token goes nowhere near the service; the service's own cookies do.
    assert header_values(e, "Authorization") == [], e["headers"]
    assert header_values(e, "Cookie") == ["a=1; b=2"], e["headers"]
    assert daemon.admin_token not in json.dumps(e)

    # Only the cookie as credential: authenticated, and no Cookie header reaches the instance.
    r = gw(strip, "/c", token="", headers={"Cookie": f"berth_token={daemon.admin_token}"})
    assert r.status_code == 200, r.text
    assert header_values(r.json(), "Cookie") == [], r.json()["headers"]
    assert daemon.admin_token not in r.text
    r = gw(strip, "/c", token="",
           headers={"Cookie": f"berth_token={daemon.admin_token}; theme=dark"})
    assert r.status_code == 200, r.text
    assert header_values(r.json(), "Cookie") == ["theme=dark"], r.json()["headers"]
    assert daemon.admin_token not in r.text


# --- 2. pinned revisions --------------------------------------------------------------------

def test_revision_pinned_routes(daemon, new_service):
    svc = new_service("pin")
    svc.push("v1", bundle("v1"))
    base = {"container-tag": "v1", "container-port": next_port()}
    svc.define({**base, "environment": [{"name": "TAG", "value": "first"}]})
    e = wait_routed(svc)
    assert e["version"] == "1" and e["tag"] == "first", e
    e = gw(svc, "@1/x?y=1").json()
    assert e["version"] == "1" and e["path"] == f"{prefix(svc)}/x?y=1", e

    # A long request on revision 1 when the route switches finishes there: revision 1 is
    # stopped only once it is done.
    slow = {}

    def slow_request():
        t = time.monotonic()
        r = gw(svc, "/slow?t=2", timeout=20)
        slow["r"], slow["took"] = r, time.monotonic() - t
    slow_thread = threading.Thread(target=slow_request, daemon=True)
    slow_thread.start()
    time.sleep(0.2)  # let it reach the instance

    svc.define({**base, "environment": [{"name": "TAG", "value": "second"}]})
    svc.wait(lambda s: s["active_revision"] == 2, 20, "revision 2 live")
    assert "r" not in slow, "the slow request finished before revision 2 was live"
    st = svc.status()
    assert [i["state"] for i in st["instances"] if i["revision"] == 1] in (["running"],
                                                                           ["stopping"]), st
    wait_until(lambda: gw(svc, "/").json()["version"] == "2", 10,
               "the plain path to answer from revision 2")
    e = gw(svc, "/").json()
    assert e["tag"] == "second", e
    e = gw(svc, "@2/x?y=1").json()
    assert e["version"] == "2" and e["tag"] == "second", e
    assert e["path"] == f"{prefix(svc)}/x?y=1", e

    # Revision 1's instances are stopped after the switch: pinning to it finds none.
    slow_thread.join(20)
    assert slow["r"].status_code == 200, slow["r"].text
    assert slow["r"].json()["version"] == "1" and slow["took"] >= 1.9, slow
    r = wait_status(svc, "@1/x", 503, 20, "@1 to answer 503 once revision 1 stopped")
    assert_native_error(r, 503, "unavailable", f"{prefix(svc)}@1 (revision 1) has no ready")
    assert r.headers.get("Retry-After"), r.headers
    # An unknown revision of a known service.
    r = gw(svc, "@99/")
    assert_native_error(r, 503, "unavailable", f"{prefix(svc)}@99 (revision 99)")
    assert r.headers.get("Retry-After"), r.headers
    # Not a revision number: no such path.
    for bad in ("@0/", "@x/", "@-1/", "@/"):
        assert_native_error(gw(svc, bad), 404, contains="no service is deployed")
    # The live revision still answers on the plain path.
    assert gw(svc, "/").json()["version"] == "2"


# --- 3. 404, 503, API still served ----------------------------------------------------------

def test_unknown_path_404_stopped_service_503_and_api_still_served(daemon, new_service):
    r = daemon.get("/default-nosuchservice/x?y=1")
    assert_native_error(r, 404, "not_found",
                        "no service is deployed at /default-nosuchservice")
    r = daemon.get("/default-nosuchservice", token="")
    assert_native_error(r, 404, contains="no service is deployed at /default-nosuchservice")

    svc = deploy(new_service, "stopme")
    assert svc.d.post(f"{svc.path}/stop").status_code == 200

    r = wait_status(svc, "/a", 503, 15, "503 after the service was stopped")
    assert_native_error(r, 503, "unavailable", f"{prefix(svc)} has no ready instance")
    assert r.headers.get("Retry-After", "").isdigit(), r.headers
    # Keep-alive: the 503 did not cost the connection; the API is served meanwhile.
    with requests.Session() as s:
        h = {"Authorization": "Bearer " + daemon.admin_token}
        for _ in range(3):
            assert s.get(daemon.url + prefix(svc) + "/", headers=h, timeout=10).status_code == 503
            r = s.get(daemon.url + "/api/v1/health", timeout=10)
            assert r.status_code == 200, r.text
    assert svc.d.post(f"{svc.path}/start").status_code == 200
    e = wait_routed(svc, "/again")
    assert e["path"] == f"{prefix(svc)}/again"


# --- 4. authentication ----------------------------------------------------------------------

def test_token_auth_login_cookie_and_public_services(daemon, new_service):
    svc = deploy(new_service, "auth")
    pub = deploy(new_service, "pub", auth="public")
    other_project = create_project(daemon)
    other = create_token(daemon, project=other_project)["token"]
    own = create_token(daemon, project="default")["token"]

    # No token: 401, JSON, a challenge, and a pointer to the login page.
    r = gw(svc, "/x", token="")
    msg = assert_native_error(r, 401, "unauthenticated")
    assert r.headers.get("WWW-Authenticate", "").startswith("Bearer"), r.headers
    assert f"/_berth/login?next={prefix(svc)}/" in msg, msg
    # Not a token: 401 as well.
    assert_native_error(gw(svc, "/x", token="berth_notatoken"), 401, "unauthenticated")
    assert_native_error(gw(svc, "/x", token="", headers={"Authorization": "Basic YTpi"}), 401)
    # Another project's token: 403.
    msg = assert_native_error(gw(svc, "/x", token=other), 403, "permission_denied")
    assert other_project in msg and "default" in msg, msg
    # The service's project and admin: 200.
    assert gw(svc, "/x", token=own).status_code == 200
    assert gw(svc, "/x").status_code == 200
    # A public service needs nothing, and any token is fine.
    r = gw(pub, "/x", token="")
    assert r.status_code == 200 and r.json()["path"] == f"{prefix(pub)}/x", r.text
    assert gw(pub, "/x", token=other).status_code == 200
    # berth's cookie never reaches a public service either.
    r = gw(pub, "/x", token="", headers={"Cookie": f"berth_token={own}; sid=7"})
    assert header_values(r.json(), "Cookie") == ["sid=7"], r.json()["headers"]

    # The browser flow: the form, a login, then the cookie.
    r = requests.get(daemon.url + f"/_berth/login?next={prefix(svc)}/page", timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/html"), r.headers
    assert '<form method="post" action="/_berth/login"' in r.text, r.text
    assert 'name="token"' in r.text and f'value="{prefix(svc)}/page"' in r.text, r.text

    r = requests.post(daemon.url + "/_berth/login", data={"token": own, "next": f"{prefix(svc)}/page"},
                      allow_redirects=False, timeout=10)
    assert r.status_code == 303, r.text
    assert r.headers["Location"] == f"{prefix(svc)}/page", r.headers
    cookie = r.headers["Set-Cookie"]
    assert cookie.startswith(f"berth_token={own};"), cookie
    assert "HttpOnly" in cookie and "Path=/" in cookie, cookie
    assert r.cookies.get("berth_token") == own

    with requests.Session() as browser:
        r = browser.post(daemon.url + "/_berth/login",
                         data={"token": own, "next": f"{prefix(svc)}/page"}, timeout=10)
        # Followed the redirect to the service with the cookie.
        assert r.status_code == 200, r.text
        assert r.history and r.history[0].status_code == 303
        e = r.json()
        assert e["path"] == f"{prefix(svc)}/page", e
        assert header_values(e, "Cookie") == [] and own not in r.text, e["headers"]
        assert browser.get(daemon.url + prefix(svc) + "/again", timeout=10).status_code == 200

    # A browser page load without a token goes to the login page and, logged in, comes back to
    # where it was going; an API client keeps its 401.
    with requests.Session() as browser:
        page = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
        r = browser.get(daemon.url + prefix(svc) + "/nb/a b?tab=2", headers=page,
                        allow_redirects=False, timeout=10)
        assert r.status_code == 302, r.text
        assert r.headers["Location"] == f"/_berth/login?next={prefix(svc)}/nb/a%2520b%3Ftab%3D2"
        form = browser.get(daemon.url + r.headers["Location"], timeout=10)
        assert f'value="{prefix(svc)}/nb/a%20b?tab=2"' in form.text, form.text
        r = browser.post(daemon.url + "/_berth/login",
                         data={"token": own, "next": f"{prefix(svc)}/nb/a%20b?tab=2"}, timeout=10)
        assert r.status_code == 200, r.text
        assert r.json()["path"] == f"{prefix(svc)}/nb/a%20b?tab=2", r.json()
    assert gw(svc, "/x", token="", headers={"Accept": "application/json"}).status_code == 401

    # A wrong token on the form: the form again, 401, with the error.
    r = requests.post(daemon.url + "/_berth/login",
                      data={"token": "berth_wrong", "next": f"{prefix(svc)}/"},
                      allow_redirects=False, timeout=10)
    assert r.status_code == 401, r.text
    assert r.headers["Content-Type"].startswith("text/html"), r.headers
    assert "not valid" in r.text and "<form" in r.text, r.text
    assert "Set-Cookie" not in r.headers
    # No open redirects.
    r = requests.post(daemon.url + "/_berth/login",
                      data={"token": own, "next": "//evil.example/x"},
                      allow_redirects=False, timeout=10)
    assert r.status_code == 303 and r.headers["Location"] == "/", r.headers
    # Nor header injection, nor a tab that browsers would drop to make "//evil".
    r = requests.post(daemon.url + "/_berth/login",
                      data={"token": own, "next": "/a\r\nSet-Cookie: evil=1\r\n\r\n"},
                      allow_redirects=False, timeout=10)
    assert r.status_code == 303, r.text
    assert r.headers["Location"] == "/a%0D%0ASet-Cookie:%20evil=1%0D%0A%0D%0A", r.headers
    assert "evil" not in r.headers["Set-Cookie"] and "evil" not in r.cookies, r.headers
    r = requests.post(daemon.url + "/_berth/login",
                      data={"token": own, "next": "/\t/evil.example"},
                      allow_redirects=False, timeout=10)
    assert r.headers["Location"] == "/%09/evil.example", r.headers


# --- 5. large and chunked uploads -----------------------------------------------------------

class RssSampler(threading.Thread):
    """Samples a process's RSS every 50 ms until stopped; `peak` is the largest."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = rss_bytes(pid)
        self.samples = 0
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            try:
                self.peak = max(self.peak, rss_bytes(self.pid))
                self.samples += 1
            except (OSError, AttributeError):
                return
            self.halt.wait(0.05)

    def stop(self):
        self.halt.set()
        self.join(5)
        return self.peak


def test_one_gib_upload_streams_with_bounded_memory_and_chunked_upload(daemon, new_service):
    svc = deploy(new_service, "upload")
    pid = daemon_pid(daemon)
    assert pid == daemon.proc.pid
    before = rss_bytes(pid)
    sampler = RssSampler(pid)
    sampler.start()

    total = 1 << 30
    block = os.urandom(1 << 20)
    sent_hash = hashlib.sha256()
    host, port = daemon_addr(daemon)
    conn = http.client.HTTPConnection(host, port, timeout=120)
    t0 = time.monotonic()
    try:
        conn.putrequest("PUT", prefix(svc) + "/upload")
        conn.putheader("Authorization", "Bearer " + daemon.admin_token)
        conn.putheader("Content-Type", "application/octet-stream")
        conn.putheader("Content-Length", str(total))
        conn.endheaders()
        for i in range(total // len(block)):
            chunk = struct.pack("!Q", i) + block[8:]  # every MiB differs: order matters
            sent_hash.update(chunk)
            conn.send(chunk)
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    elapsed = time.monotonic() - t0
    peak = sampler.stop()
    after = rss_bytes(pid)
    print(f"\n1 GiB through the gateway in {elapsed:.1f} s; daemon RSS before "
          f"{before >> 20} MB, peak {peak >> 20} MB ({sampler.samples} samples), "
          f"after {after >> 20} MB")
    assert resp.status == 200, body[:500]
    got = json.loads(body)
    assert got["count"] == total, got
    assert got["sha256"] == sent_hash.hexdigest(), got
    assert not got["chunked"], got
    assert sampler.samples >= 10, sampler.samples
    # Bounded: the body moves through fixed buffers, so the daemon grows by far less than
    # the 1 GiB it relays (measured as growth, which a sanitizer build's larger base does not
    # change).
    assert peak - before < 64 << 20, \
        f"daemon RSS grew from {before >> 20} MB to a peak of {peak >> 20} MB during a 1 GiB upload"
    assert after - before < 64 << 20, \
        f"daemon RSS grew from {before >> 20} MB to {after >> 20} MB after a 1 GiB upload"

    # Chunked: chunk sizes from 1 byte to 1 MiB, relayed as chunked.
    sizes = [1, 2, 7, 100, 4095, 4096, 4097, 65535, 65536, 65537, 1 << 20, 3, 999_999] * 4
    data = os.urandom(max(sizes))

    def gen():
        for n in sizes:
            yield data[:n]
    r = gw(svc, "/upload", method="POST", data=gen(), timeout=60)
    assert r.status_code == 200, r.text
    got = r.json()
    expect = hashlib.sha256(b"".join(data[:n] for n in sizes)).hexdigest()
    assert got == {"count": sum(sizes), "sha256": expect, "chunked": True}, got
    # An empty chunked body.
    r = gw(svc, "/upload", method="POST", data=iter([]), timeout=60,
           headers={"Transfer-Encoding": "chunked"})
    assert r.status_code == 200 and r.json()["count"] == 0, r.text
    # A big response body comes back whole too (the echo of a 5 MB body).
    big = b"z" * (5 << 20)
    r = gw(svc, "/echo", method="POST", data=big, timeout=60)
    assert r.status_code == 200 and r.json()["body"] == big.decode(), r.status_code


# --- 6. server-sent events are not buffered -------------------------------------------------

def _events_through_gateway(d, path, n):
    """Reads an event stream through the gateway on a raw socket; returns (head, arrival time
    of each event, time of the end) in seconds from the request."""
    s = connect(d)
    try:
        s.sendall(raw_request("GET", path, headers=[auth_header(d),
                                                     "Accept: text/event-stream"]))
        t0 = time.monotonic()
        buf = b""
        arrivals = {}
        s.settimeout(10)
        end = None
        while True:
            data = s.recv(65536)
            now = time.monotonic() - t0
            if not data:
                end = now
                break
            buf += data
            for m in re.finditer(rb"data: event (\d+)\n\n", buf):
                arrivals.setdefault(int(m.group(1)), now)
            if buf.endswith(b"\r\n0\r\n\r\n"):
                end = now
                break
        head = buf.split(b"\r\n\r\n", 1)[0].decode("latin-1")
        return head, arrivals, end
    finally:
        s.close()


@pytest.mark.parametrize("mode", ["chunked", "eof"])
def test_server_sent_events_are_relayed_unbuffered(daemon, new_service, mode):
    svc = deploy(new_service, "sse")
    n, delay = 5, 0.3
    head, arrivals, end = _events_through_gateway(
        daemon, f"{prefix(svc)}/sse?n={n}&delay={delay}&mode={mode}", n)
    print(f"\n{mode}: events at {[round(arrivals[i], 3) for i in sorted(arrivals)]}, "
          f"end at {end:.3f}")
    assert head.startswith("HTTP/1.1 200"), head
    assert re.search(r"(?im)^content-type: text/event-stream", head), head
    assert not re.search(r"(?im)^content-length:", head), head
    if mode == "chunked":
        assert re.search(r"(?im)^transfer-encoding: chunked", head), head
    else:
        assert re.search(r"(?im)^connection: close", head), head
    assert sorted(arrivals) == list(range(n)), arrivals
    # The first event comes at once, long before the stream ends; each one when it is sent.
    assert arrivals[0] < 0.5 * (n - 1) * delay, arrivals
    assert end - arrivals[0] >= 0.8 * (n - 1) * delay, (arrivals, end)
    for i in range(1, n):
        assert arrivals[i] - arrivals[i - 1] >= 0.5 * delay, arrivals


# --- 7. websockets --------------------------------------------------------------------------

def test_websocket_echo_through_the_gateway(daemon, new_service):
    svc = deploy(new_service, "ws")
    host, port = daemon_addr(daemon)
    uri = f"ws://{host}:{port}{prefix(svc)}/ws"
    messages = ["hello", "é ünïcode ✓", "x" * 125, "y" * 126, "z" * 5000, "w" * 70000,
                b"\x00\x01\x02binary\xff"]

    async def session():
        async with websockets.connect(
                uri, extra_headers={"Authorization": "Bearer " + daemon.admin_token},
                open_timeout=10, close_timeout=5, compression=None, max_size=1 << 20) as ws:
            for m in messages:
                await ws.send(m)
                got = await asyncio.wait_for(ws.recv(), 10)
                assert got == m, (len(got), len(m))
            # Pipelined: many in flight at once, answered in order.
            for i in range(50):
                await ws.send(f"msg {i}")
            for i in range(50):
                assert await asyncio.wait_for(ws.recv(), 10) == f"msg {i}"
            pong = await ws.ping(b"are you there")
            await asyncio.wait_for(pong, 10)
        assert ws.close_code == 1000, ws.close_code

    async def two_at_once():
        await asyncio.gather(session(), session())

    asyncio.run(two_at_once())

    async def no_token():
        with pytest.raises(websockets.exceptions.InvalidStatusCode) as e:
            async with websockets.connect(uri, open_timeout=10):
                pass
        assert e.value.status_code == 401
    asyncio.run(no_token())
    # The service still answers plain HTTP.
    assert gw(svc, "/after").status_code == 200


# --- 8. slowloris ---------------------------------------------------------------------------

def test_slow_request_heads_are_closed_and_others_served(daemon, new_service):
    svc = deploy(new_service, "slow")
    slow_head = raw_request("GET", prefix(svc) + "/", headers=[auth_header(daemon)])
    api_head = raw_request("GET", "/api/v1/health")
    slow = []  # [socket, head bytes, bytes sent, first byte time, closed time, received]
    for head in (slow_head, slow_head, api_head):
        slow.append([connect(daemon), head, 0, None, None, b""])

    served = 0
    t_start = time.monotonic()
    with requests.Session() as s:
        while any(c[4] is None for c in slow) and time.monotonic() - t_start < 16:
            for c in slow:
                if c[4] is not None or c[2] >= len(c[1]) - 1:
                    continue
                try:
                    c[0].send(c[1][c[2]:c[2] + 1])  # one byte a second, never the last
                    if c[3] is None:
                        c[3] = time.monotonic()
                    c[2] += 1
                except OSError:
                    c[4] = time.monotonic()
            # Everyone else is served meanwhile, on new and kept connections.
            r = s.get(daemon.url + prefix(svc) + "/normal",
                      headers={"Authorization": "Bearer " + daemon.admin_token}, timeout=5)
            assert r.status_code == 200, r.text
            r = requests.get(daemon.url + "/api/v1/health", timeout=5)
            assert r.status_code == 200, r.text
            served += 2
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                open_socks = [c[0] for c in slow if c[4] is None]
                if not open_socks:
                    break
                readable, _, _ = select.select(open_socks, [], [], deadline - time.monotonic())
                for c in slow:
                    if c[0] in readable:
                        try:
                            data = c[0].recv(65536)
                        except ConnectionResetError:
                            data = b""
                        c[5] += data
                        if not data:
                            c[4] = time.monotonic()
    for c in slow:
        c[0].close()
    for i, (_, head, sent, began, closed, received) in enumerate(slow):
        assert closed is not None, f"slow connection {i} still open after {sent} bytes"
        took = closed - began
        print(f"\nslow connection {i}: closed {took:.1f} s after its first byte, "
              f"{sent} bytes sent, answer {received[:40]!r}")
        assert 9.0 <= took <= 12.5, f"slow connection {i} closed after {took:.1f} s"
        assert sent < len(head) - 1
        if received:
            assert received.startswith(b"HTTP/1.1 408 "), received[:200]
            assert b"did not arrive within 10 s" in received, received
    assert served >= 18, served



def test_request_head_after_a_long_idle_is_served(daemon, new_service):
    """The 10 s header timeout counts from a head's first byte. A keep-alive connection that
    idled 11 s (under the 60 s idle timeout) after its first exchange, or a new connection
    opened 11 s before its first request (as browsers' preconnects are), then sends a head in
    two pieces 0.5 s apart: that head took 0.5 s and is served."""
    svc = deploy(new_service, "idle")
    req = raw_request("GET", prefix(svc) + "/second", headers=[auth_header(daemon)])
    kept = connect(daemon)
    kept.sendall(raw_request("GET", prefix(svc) + "/first", headers=[auth_header(daemon)]))
    first, rest = read_response(kept)
    assert first.status == 200 and not rest, first.head
    fresh = connect(daemon)
    results = {}

    def client(name, sock):
        time.sleep(11.0)
        try:
            sock.sendall(req[:20])
            t = time.monotonic()
            time.sleep(0.5)
            sock.sendall(req[20:])
            resp, _ = read_response(sock, timeout=10)
            results[name] = (resp.status, f"answered {time.monotonic() - t:.2f} s after the "
                                          f"head's first byte", resp.body[:120])
        except (OSError, EOFError) as e:
            results[name] = (None, repr(e))
    threads = [threading.Thread(target=client, args=a, daemon=True)
               for a in (("kept", kept), ("fresh", fresh))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    kept.close()
    fresh.close()
    assert {k: v[0] for k, v in results.items()} == {"kept": 200, "fresh": 200}, results


# --- 9. rolling updates without a failed request --------------------------------------------

def test_twenty_rolling_updates_without_a_failed_request(daemon, new_service):
    svc = new_service("roll")
    svc.push("v1", bundle("v1"))
    svc.push("v2", bundle("v2"))
    port = next_port()

    def definition(k):
        return {"container-tag": "v1" if k % 2 == 0 else "v2", "container-port": port,
                "environment": [{"name": "TAG", "value": f"t{k}"}]}
    svc.define(definition(0))
    wait_routed(svc)

    url = daemon.url + prefix(svc)
    auth = {"Authorization": "Bearer " + daemon.admin_token}
    stop = threading.Event()
    lock = threading.Lock()
    stats = {"ok": 0, "fresh": 0, "slow": 0}
    failures = []
    seen = {}  # tag -> revision (from BERTH_VERSION), as the background clients saw them

    def record(r, what):
        if r.status_code != 200:
            failures.append((round(time.monotonic() - t0, 3), what, r.status_code, r.text[:300]))
            return
        e = r.json()
        with lock:
            stats["ok"] += 1
            seen[e["tag"]] = (e["version"], e["bundle"])

    def client(kind):
        with requests.Session() as s:
            i = 0
            while not stop.is_set():
                i += 1
                try:
                    if kind == "slow":
                        # Often in flight when the route switches: must finish where it began.
                        r = s.get(url + "/slow?t=0.2", headers=auth, timeout=15)
                        stats["slow"] += 1
                    elif i % 4 == 0:
                        # A new client connection each time.
                        r = requests.get(url + f"/fresh/{i}", timeout=15,
                                         headers={**auth, "Connection": "close"})
                        stats["fresh"] += 1
                    elif i % 4 == 1:
                        r = s.post(url + f"/post/{i}", data=b"p" * 100, headers=auth,
                                   timeout=15)
                    else:
                        r = s.get(url + f"/kept/{i}", headers=auth, timeout=15)
                    record(r, f"{kind} {i}")
                except requests.RequestException as e:
                    failures.append((round(time.monotonic() - t0, 3), f"{kind} {i}", repr(e)))

    t0 = time.monotonic()
    threads = [threading.Thread(target=client, args=(k,), daemon=True)
               for k in ("loop", "loop", "slow")]
    for t in threads:
        t.start()
    switch_times = []
    try:
        for k in range(1, 21):
            ts = time.monotonic()
            ok_before, slow_before = stats["ok"], stats["slow"]
            svc.define(definition(k))
            svc.wait(lambda s: s["active_revision"] == k + 1, 20, f"revision {k + 1} live",
                     interval=0.05)

            def answers_new():
                e = requests.get(url + "/check", headers=auth, timeout=10).json()
                return e["tag"] == f"t{k}" and e["version"] == str(k + 1)
            wait_until(answers_new, 10, f"the gateway to answer from revision {k + 1}",
                       interval=0.02)
            switch_times.append(time.monotonic() - ts)
            # Traffic across every switch, however fast the switch was.
            wait_until(lambda: stats["ok"] >= ok_before + 10 and stats["slow"] > slow_before, 10,
                       f"the clients' requests across revision {k + 1}", interval=0.02)
            assert time.monotonic() - t0 < 90, "the rolling updates take too long"
        # Let the clients run across the last switch's draining too.
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join(20)
    elapsed = time.monotonic() - t0
    print(f"\n20 rolling updates in {elapsed:.1f} s (each {min(switch_times):.2f}-"
          f"{max(switch_times):.2f} s); {stats} requests, {len(failures)} failed")
    assert not failures, f"{len(failures)} failed requests during rolling updates: " \
                         f"{failures[:10]}"
    assert stats["ok"] >= 200 and stats["slow"] >= 10 and stats["fresh"] >= 20, stats
    # The background clients saw the revisions change, ending with the last one.
    assert seen.get("t20") == ("21", "v1"), seen
    assert len(seen) >= 10, seen
    for tag, (version, bndl) in seen.items():
        k = int(tag[1:])
        assert version == str(k + 1) and bndl == ("v1" if k % 2 == 0 else "v2"), seen
    st = svc.wait(lambda s: [i for i in s["instances"] if i["state"] in
                             ("starting", "running", "unhealthy", "stopping")
                             and i["revision"] != 21] == [], 20,
                  "only revision 21's instance left")
    assert st["active_revision"] == 21 and st["running"] == 1, st


# --- 10. metrics ----------------------------------------------------------------------------

def _metrics(d, token=None):
    r = d.get("/metrics", token=token)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/plain"), r.headers
    out = {}
    for line in r.text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out, r.text


def test_metrics_count_the_routes_traffic(daemon, new_service):
    svc = deploy(new_service, "metrics")
    p = prefix(svc)
    other_project = create_project(daemon)
    other = create_token(daemon, project=other_project)["token"]
    own = create_token(daemon, project="default")["token"]

    m0, _ = _metrics(daemon)
    req = lambda code: f'berth_gateway_requests_total{{route="{p}",code="{code}"}}'  # noqa
    count = f'berth_gateway_request_duration_seconds_count{{route="{p}"}}'
    b_in = f'berth_gateway_bytes_total{{route="{p}",direction="in"}}'
    b_out = f'berth_gateway_bytes_total{{route="{p}",direction="out"}}'
    assert req("2xx") in m0 and m0[req("2xx")] >= 1, m0

    out = 0
    for i in range(10):
        r = gw(svc, f"/m/{i}")
        assert r.status_code == 200
        out += len(r.content)
    r = gw(svc, "/post", method="POST", data=b"b" * 1000)
    assert r.status_code == 200
    out += len(r.content)
    assert gw(svc, "/x", token="").status_code == 401
    assert gw(svc, "/x", token=other).status_code == 403
    assert gw(svc, "@42/x").status_code == 503

    def delta():
        m, _ = _metrics(daemon)
        return {k: m.get(k, 0) - m0.get(k, 0) for k in
                (req("2xx"), req("4xx"), req("5xx"), req("error"), count, b_in, b_out)}, m
    want = {req("2xx"): 11, req("4xx"): 2, req("5xx"): 1, req("error"): 0, count: 14,
            b_in: 1000, b_out: out}
    last = {}

    def settled():
        last["d"], last["m"] = delta()
        return last["d"] == want
    try:
        # A request is counted when its exchange ends, which may be just after the client
        # has its answer.
        wait_until(settled, 3, "the metrics to count the requests", interval=0.05)
    except AssertionError:
        pass
    d, m = last["d"], last["m"]
    assert d == want, d
    # The histogram is cumulative and ends at the count.
    buckets = [(k, v) for k, v in m.items()
               if k.startswith(f'berth_gateway_request_duration_seconds_bucket{{route="{p}"')]
    assert len(buckets) >= 5, m
    values = [v for _, v in buckets]
    assert values == sorted(values), buckets
    assert buckets[-1][0].endswith('le="+Inf"}') and buckets[-1][1] == m[count], buckets
    assert m[f'berth_gateway_request_duration_seconds_sum{{route="{p}"}}'] > 0

    # Metrics cover every project: admin only.
    assert_native_error(daemon.get("/metrics", token=own), 403)
    assert_native_error(daemon.get("/metrics", token=other), 403)
    assert_native_error(daemon.get("/metrics", token=""), 401)


# --- 11. header limits ----------------------------------------------------------------------

@pytest.mark.parametrize("size_kib", [17, 20, 40])
def test_request_head_over_16_kib_is_refused_with_431(daemon, new_service, size_kib):
    svc = deploy(new_service, "big")
    filler = "a" * (size_kib << 10)
    got = {}
    for path in (prefix(svc) + "/big", "/api/v1/health"):
        s = connect(daemon)
        try:
            s.sendall(raw_request("GET", path, headers=[auth_header(daemon),
                                                        f"X-Big: {filler}"]))
            resp, _ = read_response(s)
        finally:
            s.close()
        got[path] = (resp.status, resp.body)
    assert {p: v[0] for p, v in got.items()} == {prefix(svc) + "/big": 431,
                                                 "/api/v1/health": 431}, \
        f"GET with a {size_kib} KiB header: {[(p, v[0], v[1][:90]) for p, v in got.items()]}"
    assert all(b"larger than the limit of 16384 bytes" in v[1] for v in got.values()), got
    # Just under the limit is fine.
    r = gw(svc, "/ok", headers={"X-Big": "a" * (15 << 10)})
    assert r.status_code == 200, r.text


def test_many_header_fields_are_not_misrouted(daemon, new_service):
    """A request with more fields than the proxy's parser keeps (100), well under 16 KiB, is
    either served or refused as too large, not answered as if no service were there."""
    svc = deploy(new_service, "fields")
    s = connect(daemon)
    try:
        s.sendall(raw_request("GET", prefix(svc) + "/many",
                              headers=[auth_header(daemon)] +
                              [f"X-F{i}: {i}" for i in range(120)]))
        resp, _ = read_response(s)
    finally:
        s.close()
    assert resp.status in (200, 431), (resp.status, resp.body[:300])


# --- request smuggling: what RFC 9110 / 9112 refuse is never forwarded ----------------------

SMUGGLING = {
    # name: (head lines after the request line and Host, body)
    "bare-cr": (["X-A: a\rContent-Length: 40"], b""),
    "nul-in-value": (["X-A: a\x00b"], b""),
    "control-in-name": (["X\x01A: a"], b""),
    "space-before-colon": (["Transfer-Encoding : chunked"], b"0\r\n\r\n"),
    "te-chunked-identity": (["Transfer-Encoding: chunked, identity"], b"0\r\n\r\n"),
    "te-identity": (["Transfer-Encoding: identity", "Content-Length: 3"], b"abc"),
    "te-twice": (["Transfer-Encoding: chunked", "Transfer-Encoding: chunked"], b"0\r\n\r\n"),
    "obs-fold": (["X-A: a", " folded: yes"], b""),
    "cl-list": (["Content-Length: 4, 4"], b"abcd"),
    "cl-conflict": (["Content-Length: 4", "Content-Length: 5"], b"abcd"),
    "cl-and-te": (["Content-Length: 4", "Transfer-Encoding: chunked"], b"0\r\n\r\n"),
    "two-hosts": (["Host: other.test"], b""),
    "bad-chunk-size": (["Transfer-Encoding: chunked"], b"0x3\r\nabc\r\n0\r\n\r\n"),
}


def _send_smuggling_case(daemon, svc, case):
    lines, body = SMUGGLING[case]
    smuggled = raw_request("GET", prefix(svc) + "/smuggled-" + case,
                           headers=[auth_header(daemon)])
    head = "\r\n".join([f"POST {prefix(svc)}/victim-{case} HTTP/1.1", "Host: berth.test",
                         auth_header(daemon), *lines])
    s = connect(daemon)
    try:
        s.sendall(head.encode("latin-1") + b"\r\n\r\n" + body + smuggled)
        resp, rest = read_response(s)
        try:
            while chunk := s.recv(65536):
                rest += chunk
        except ConnectionResetError:
            pass  # closed with bytes unread: a reset is a close too
    finally:
        s.close()
    return resp, rest


def test_smuggling_shapes_are_400s_that_forward_nothing(daemon, new_service):
    """Each malformed request to a service path, followed on the same connection by a request
    it might smuggle: one 400 that names the rule and closes the connection, no second answer,
    and the pooled upstream connections serve the next callers their own answers."""
    svc = deploy(new_service, "smug")
    for case in sorted(SMUGGLING):
        resp, rest = _send_smuggling_case(daemon, svc, case)
        assert resp.status == 400, (case, resp.head, resp.body[:300])
        assert b"malformed request" in resp.body, (case, resp.body)
        assert (resp.header("Connection") or "").lower() == "close", (case, resp.head)
        assert rest == b"", f"{case}: a second response after the 400: {rest[:300]!r}"
        for i in range(3):
            r = gw(svc, f"/after-{case}/{i}")
            assert r.status_code == 200, (case, i, r.status_code, r.text[:300])
            assert r.json()["path"] == f"{prefix(svc)}/after-{case}/{i}", (case, i, r.text[:300])


def test_a_malformed_request_to_the_api_is_a_400_not_a_404(daemon):
    s = connect(daemon)
    try:
        s.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: berth.test\r\nX-A: a\rb\r\n\r\n")
        resp, _ = read_response(s)
    finally:
        s.close()
    assert resp.status == 400, (resp.head, resp.body)
    assert b"bare CR" in resp.body, resp.body


# --- keep-alive and pooling -----------------------------------------------------------------

def _exchange_on_one_connection(d, svc, reqs):
    """Sends `reqs` one after the other on one client connection; returns the echoes. Fails
    naming the request if the connection is closed or announced to be closed."""
    s = connect(d)
    buf = b""
    echoes = []
    try:
        for n, req in enumerate(reqs):
            what = req.split(b"\r\n", 1)[0].decode()
            try:
                s.sendall(req)
                resp, buf = read_response(s, buf, head_only=req.startswith(b"HEAD "))
            except (OSError, EOFError) as e:
                raise AssertionError(f"request {n} ({what}) on the kept connection failed: {e!r}")
            assert resp.status == 200, (n, resp.head, resp.body[:300])
            assert (resp.header("Connection") or "").lower() != "close", \
                f"request {n} ({what}): the gateway closes the client connection:\n{resp.head}"
            echoes.append(json.loads(resp.body) if resp.body else resp)
    finally:
        s.close()
    return echoes


def test_keep_alive_and_pooled_upstream_connections(daemon, new_service):
    svc = deploy(new_service, "keep")
    echoes = _exchange_on_one_connection(daemon, svc, [
        raw_request("HEAD" if i == 2 else "GET", prefix(svc) + f"/k/{i}",
                    headers=[auth_header(daemon)])
        for i in range(5)])
    head = echoes.pop(2)  # HEAD: a head with the length of the body it does not send
    assert isinstance(head, RawResponse) and int(head.header("Content-Length")) > 0, head.head
    assert [e["path"] for e in echoes] == [f"{prefix(svc)}/k/{i}" for i in (0, 1, 3, 4)]
    peers = {e["peer"] for e in echoes}
    # Pipelined: three heads in one write, three answers in order.
    s = connect(daemon)
    try:
        s.sendall(b"".join(raw_request("GET", prefix(svc) + f"/pipe/{i}",
                                       headers=[auth_header(daemon)]) for i in range(3)))
        buf = b""
        for i in range(3):
            resp, buf = read_response(s, buf)
            assert resp.status == 200, resp.head
            assert json.loads(resp.body)["path"] == f"{prefix(svc)}/pipe/{i}", resp.body
    finally:
        s.close()
    # One request at a time, each on a new client connection: the same pooled upstream one.
    for i in range(5):
        with requests.Session() as fresh:
            r = fresh.get(daemon.url + prefix(svc) + f"/p/{i}",
                          headers={"Authorization": "Bearer " + daemon.admin_token}, timeout=10)
        assert r.status_code == 200, r.text
        peers.add(r.json()["peer"])
    # Pooled: nine requests, not nine upstream connections. A second one may appear when a
    # fresh client's request arrives (on the daemon's other thread) in the moment between an
    # answer reaching the client and its upstream connection going back to the pool.
    assert len(peers) <= 2, f"upstream connections were not reused: {sorted(peers)}"


def test_keep_alive_after_requests_with_bodies(daemon, new_service):
    svc = deploy(new_service, "keepb")
    echoes = _exchange_on_one_connection(daemon, svc, [
        raw_request("POST", prefix(svc) + "/b/length", headers=[auth_header(daemon)],
                    body=b"abc"),
        raw_request("POST", prefix(svc) + "/b/chunked",
                    headers=[auth_header(daemon), "Transfer-Encoding: chunked"])
        + b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        raw_request("PUT", prefix(svc) + "/b/put", headers=[auth_header(daemon)], body=b"x"),
        raw_request("GET", prefix(svc) + "/b/get", headers=[auth_header(daemon)]),
    ])
    assert [(e["method"], e["body"]) for e in echoes] == \
        [("POST", "abc"), ("POST", "abcde"), ("PUT", "x"), ("GET", "")], echoes


def test_expect_100_continue_is_answered_before_the_body(daemon, new_service):
    """A client that sends "Expect: 100-continue" waits for an interim 100 before sending its
    body; the instance (Python's http.server) sends one, and it must reach the client."""
    svc = deploy(new_service, "expect")
    head = raw_request("POST", prefix(svc) + "/upload",
                       headers=[auth_header(daemon), "Expect: 100-continue",
                                "Content-Length: 5"])
    # Asked directly, the instance answers 100 at once.
    inst = svc.wait_running()
    with socket.create_connection((inst["host"], inst["port"]), timeout=5) as direct:
        direct.sendall(head)
        assert direct.recv(65536).startswith(b"HTTP/1.1 100 Continue"), "instance sends no 100"
    s = connect(daemon)
    try:
        s.sendall(head)
        s.settimeout(3)
        try:
            interim = s.recv(65536)
        except socket.timeout:
            interim = b""
        assert interim.startswith(b"HTTP/1.1 100"), \
            f"no 100 Continue within 3 s of a head with Expect: 100-continue: {interim[:200]!r}"
        s.sendall(b"hello")
        resp, _ = read_response(s, interim.split(b"\r\n\r\n", 1)[1])
        assert resp.status == 200 and json.loads(resp.body)["count"] == 5, resp.body
    finally:
        s.close()


def test_a_one_thread_daemon_serves_the_api_the_gateway_and_websockets_at_once(
        daemon_factory, new_service):
    """--threads 1 runs connections without strands (the one thread orders their handlers):
    API calls, proxied requests, a websocket and a streamed log follow, side by side."""
    d = daemon_factory(extra_args=["--threads", "1"])
    svc = new_service("gw1", d=d)
    svc.push("v1", bundle("v1"))
    svc.define({"container-tag": "v1", "container-port": next_port()})
    wait_routed(svc)
    bearer = {"Authorization": "Bearer " + d.admin_token}
    failures = []

    def hammer(call):
        for _ in range(40):
            r = call()
            if r.status_code != 200:
                failures.append((r.status_code, r.text[:200]))

    calls = [lambda: gw(svc, "/x"), lambda: d.get("/api/v1/services"),
             lambda: gw(svc, "/y", method="POST", data=b"z" * 10000),
             lambda: d.get(f"/api/v1/services/{svc.name}/status")]
    threads = [threading.Thread(target=hammer, args=(c,)) for c in calls]
    follow = requests.get(f"{d.url}/api/v1/services/{svc.name}/logs?follow=1&tail=1",
                          headers=bearer, stream=True, timeout=30)
    for t in threads:
        t.start()

    async def echo():
        url = d.url.replace("http://", "ws://") + prefix(svc) + "/ws"
        async with websockets.connect(url, extra_headers=bearer, open_timeout=10) as ws:
            for k in range(20):
                await ws.send(f"m{k}")
                assert await asyncio.wait_for(ws.recv(), 10) == f"m{k}"
    asyncio.run(echo())
    for t in threads:
        t.join()
    assert next(follow.iter_lines()), "the log follow stream said nothing"
    follow.close()
    assert failures == []
