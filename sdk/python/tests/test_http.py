"""The HTTP surface: context root, health, 404/405, and HTTP/1.1 framing."""

import http.client
import json
import socket

import pytest

from berth import Service

ROOT = "/default-hello"


def make_service() -> Service:
    service = Service()
    service.add_parameter("greeting_phrase", "Hello")

    @service.entrypoint
    def hello(name: str) -> str:
        return f"{service.get_parameter('greeting_phrase')} {name}"

    @service.entrypoint(method="GET", path="status/now")
    def now() -> dict:
        return {"ok": True}

    return service


@pytest.fixture
def svc(serve, monkeypatch):
    monkeypatch.setenv("CONTEXT_ROOT", ROOT)
    monkeypatch.setenv("BERTH_SERVICE", "hello")
    monkeypatch.setenv("BERTH_VERSION", "7")
    return serve(make_service(), root=ROOT)


@pytest.mark.parametrize("prefixed", [True, False], ids=["with-prefix", "stripped"])
def test_every_endpoint_answers_with_and_without_the_context_root(svc, prefixed):
    def url(path):
        return svc.url(path, prefixed=prefixed)

    assert svc.http.post(url("/hello"), json={"name": "Ada"}).json() == "Hello Ada"
    assert svc.http.get(url("/status/now")).json() == {"ok": True}
    assert svc.http.get(url("/~health")).json() == {"status": "ok"}
    assert svc.http.get(url("/~parameters/greeting_phrase")).json()["value"] == "Hello"
    assert svc.http.post(url("/~parameters/greeting_phrase"),
                         json={"greeting_phrase": "Hi"}).status_code == 200
    assert svc.http.get(url("/openapi.json")).json()["servers"] == [{"url": ROOT}]
    assert svc.http.get(url("/docs")).headers["Content-Type"] == "text/html; charset=utf-8"


def test_the_context_root_itself_lists_the_service(svc):
    for path in (ROOT, ROOT + "/", "/"):
        r = svc.http.get(svc.base + path)
        assert r.status_code == 200
        assert r.json() == {"service": "hello", "version": "7",
                            "entrypoints": [f"POST {ROOT}/hello", f"GET {ROOT}/status/now"],
                            "docs": f"{ROOT}/docs", "openapi": f"{ROOT}/openapi.json"}


def test_a_context_root_is_normalized(serve, monkeypatch):
    monkeypatch.setenv("CONTEXT_ROOT", "default-hello/")
    svc = serve(make_service(), root=ROOT)
    assert svc.post("/hello", json={"name": "Ada"}).json() == "Hello Ada"
    assert svc.get("/openapi.json").json()["servers"] == [{"url": ROOT}]


def test_without_a_context_root_the_server_url_is_slash(serve):
    svc = serve(make_service())
    assert svc.get("/openapi.json").json()["servers"] == [{"url": "/"}]


def test_a_trailing_slash_is_accepted(svc):
    assert svc.post("/hello/", json={"name": "Ada"}).json() == "Hello Ada"


def test_health(svc):
    r = svc.get("/~health")
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    assert svc.post("/~health").status_code == 405


def test_an_unknown_path_is_404_naming_it_and_listing_entrypoints(svc):
    r = svc.post("/helo", json={"name": "Ada"})
    assert r.status_code == 404
    assert r.json() == {"error": {"code": "not_found", "message":
                                  f"no entrypoint at '/helo' (under context root {ROOT}); "
                                  f"entrypoints: POST /hello, GET /status/now "
                                  f"(documented at {ROOT}/docs)"}}


def test_a_service_without_entrypoints_says_so_on_404(serve):
    svc = serve(Service())
    assert "this service has no entrypoints yet" in svc.get("/x").json()["error"]["message"]


def test_a_wrong_method_is_405_with_allow(svc):
    r = svc.get("/hello")
    assert r.status_code == 405
    assert r.headers["Allow"] == "POST"
    assert r.json() == {"error": {"code": "method_not_allowed",
                                  "message": "GET is not allowed on /hello; use POST"}}
    r = svc.http.delete(svc.url("/docs"))
    assert r.status_code == 405 and r.headers["Allow"] == "GET, HEAD"


def test_head_answers_like_get_without_a_body(svc):
    conn = http.client.HTTPConnection("127.0.0.1", int(svc.base.rsplit(":", 1)[1]), timeout=10)
    conn.request("HEAD", ROOT + "/~health")
    r = conn.getresponse()
    assert r.status == 200
    assert r.getheader("Content-Length") == str(len(b'{"status": "ok"}\n'))
    assert r.read() == b""
    conn.close()


def _connection(svc) -> http.client.HTTPConnection:
    host, port = svc.base.removeprefix("http://").split(":")
    return http.client.HTTPConnection(host, int(port), timeout=10)


def test_keep_alive_serves_several_requests_on_one_connection(svc):
    conn = _connection(svc)
    conn.connect()
    sock = conn.sock
    for name in ("Ada", "Grace", "Linus"):
        conn.request("POST", ROOT + "/hello", body=json.dumps({"name": name}),
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        body = r.read()
        assert r.status == 200 and json.loads(body) == f"Hello {name}"
        assert r.getheader("Content-Length") == str(len(body))
        assert r.getheader("Connection") != "close"
        assert conn.sock is sock  # http.client would reconnect if the server had closed
    conn.request("GET", ROOT + "/nope")  # errors keep the connection too
    assert conn.getresponse().read() and conn.sock is sock
    conn.close()


def test_chunked_request_bodies_are_read(svc):
    conn = _connection(svc)
    conn.request("POST", ROOT + "/hello", body=iter([b'{"name"', b': "Ada"}']),
                 headers={"Transfer-Encoding": "chunked"}, encode_chunked=True)
    r = conn.getresponse()
    assert r.status == 200 and json.loads(r.read()) == "Hello Ada"
    conn.request("POST", ROOT + "/hello", body=json.dumps({"name": "Bo"}))
    assert json.loads(conn.getresponse().read()) == "Hello Bo"
    conn.close()


def _raw(svc, data: bytes) -> bytes:
    host, port = svc.base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(data)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_a_body_over_the_limit_is_413_and_the_connection_closed(svc):
    answer = _raw(svc, b"POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 ")
    assert b"Connection: close" in head
    assert json.loads(body)["error"]["code"] == "payload_too_large"


def test_an_invalid_content_length_is_400(svc):
    answer = _raw(svc, b"POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: ten\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b"invalid Content-Length" in answer


@pytest.mark.parametrize("head, why", [
    (b"POST /hello HTTP/1.1\r\nHost: x\r\nX: a\rContent-Length: 5\r\n\r\n", b"control character"),
    (b"POST /hello HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n", b"control character"),
    (b"POST /hello HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
     b"other than chunked"),
    (b"POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 4, 4\r\n\r\n", b"decimal number"),
    (b"POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n",
     b"two different"),
    (b"POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked"
     b"\r\n\r\n", b"both"),
    (b"GET /hello HTTP/1.1\r\nHost: x\r\nX: a\r\n folded\r\n\r\n", b"obs-fold"),
    (b"GET /hello HTTP/1.1\r\nHost: x\r\nX Y: a\r\n\r\n", b"field name"),
    (b"GET /hello HTTP/1.1\r\nX: a\r\n\r\n", b"without a Host"),
    (b"GET /hello HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", b"more than one Host"),
    (b"GET  /hello HTTP/1.1\r\nHost: x\r\n\r\n", b"single spaces"),
], ids=["bare-cr", "nul", "te-identity", "cl-list", "cl-twice", "cl-and-te", "obs-fold",
        "name-space", "no-host", "two-hosts", "double-space"])
def test_what_rfc_9112_refuses_is_a_400_that_closes(svc, head, why):
    answer = _raw(svc, head)  # returns once the server closed the connection
    first, _, body = answer.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 400 "), answer
    assert answer.count(b"\r\nServer: ") == 1, answer  # one response, whatever was smuggled
    assert why in json.loads(body)["error"]["message"].encode()


@pytest.mark.parametrize("body, why", [
    (b"0x5\r\nhello\r\n0\r\n\r\n", b"chunk-size"),
    (b"5 \r\nhello\r\n0\r\n\r\n", b"chunk-size"),
    (b"5\nhello\r\n0\r\n\r\n", b"chunk-size"),
    (b"5\r\nhelloXX0\r\n\r\n", b"CRLF"),
    (b"5\r\nhello\r\n0\r\nX: \x01\r\n\r\n", b"trailer"),
], ids=["0x", "bws-without-ext", "bare-lf", "no-crlf", "control-in-trailer"])
def test_a_malformed_chunked_body_is_a_400(svc, body, why):
    answer = _raw(svc, b"POST /default-hello/hello HTTP/1.1\r\nHost: x\r\n"
                       b"Transfer-Encoding: chunked\r\n\r\n" + body)
    assert answer.startswith(b"HTTP/1.1 400 "), answer
    assert why in answer


def test_a_malformed_request_line_gets_a_json_error(svc):
    answer = _raw(svc, b"GARBAGE\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b" 400 " in head.split(b"\r\n")[0]
    assert json.loads(body)["error"]["code"] == "bad_request"


def test_percent_encoded_paths_are_decoded(svc):
    assert svc.http.get(svc.base + ROOT + "/%7Eparameters/greeting%5Fphrase").json()["value"] \
        == "Hello"
