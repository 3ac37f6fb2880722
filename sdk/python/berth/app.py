"""Request handling without sockets: a Request in, a Response out.

The HTTP server (server.py) only moves bytes; everything a client can observe
(routing, status codes, error bodies) is decided here, in plain functions that
never raise: a bug in user code becomes a 500 with its message, and the
traceback goes to the log.
"""

import dataclasses
import datetime
import enum
import json
import logging
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Callable

from . import openapi
from .entrypoints import Entrypoint
from .parameters import Parameters, UnknownParameter
from .typespec import ArgumentError

log = logging.getLogger("berth")

DOCS_PAGE = "docs.html"


@dataclass
class Request:
    method: str
    target: str  # path and query, as received
    body: bytes = b""


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict = field(default_factory=dict)


def json_response(status: int, value: Any) -> Response:
    return Response(status, (json.dumps(value, ensure_ascii=False) + "\n").encode())


def error(status: int, code: str, message: str, headers: dict | None = None) -> Response:
    r = json_response(status, {"error": {"code": code, "message": message}})
    r.headers.update(headers or {})
    return r


def relative_path(path: str, context_root: str) -> str:
    """The path below the context root; a path without the prefix is taken as is.

    The gateway forwards requests with the prefix unless the service is set to
    strip it, and a developer calling the process directly sends none: both work.
    """
    if context_root and (path == context_root or path.startswith(context_root + "/")):
        path = path[len(context_root):]
    path = "/" + path.strip("/")
    return path


class App:
    """Routes requests to the built-in endpoints and to the service's entrypoints."""

    def __init__(self, routes: dict[str, dict[str, Entrypoint]], parameters: Parameters,
                 context_root: str, title: str, version: str, docs_html: Callable[[], bytes]):
        self.routes = routes
        self.parameters = parameters
        self.context_root = context_root
        self.title = title
        self.version = version
        self._docs_html = docs_html

    def handle(self, req: Request) -> Response:
        raw_path, _, query = req.target.partition("?")
        path = relative_path(urllib.parse.unquote(raw_path), self.context_root)
        try:
            return self._route(req, path, query)
        except Exception as e:  # a bug in berth itself; user code is guarded in _call
            log.exception("internal error while handling %s %s", req.method, raw_path)
            return error(500, "internal", f"berth failed to handle the request: {e}")

    def _route(self, req: Request, path: str, query: str) -> Response:
        method = "GET" if req.method == "HEAD" else req.method
        if path in self.routes:
            by_method = self.routes[path]
            ep = by_method.get(method)
            if ep is None:
                return self._not_allowed(req.method, path, sorted(by_method))
            return self._call(ep, req, query)
        if path == "/~health":
            return self._only("GET", method, path) or json_response(200, {"status": "ok"})
        if path == "/~parameters":
            return self._only("GET", method, path) or json_response(
                200, {"parameters": self.parameters.describe_all()})
        if path.startswith("/~parameters/"):
            return self._parameter(method, path, path[len("/~parameters/"):], req.body)
        if path == "/openapi.json":
            return self._only("GET", method, path) or json_response(200, self.openapi())
        if path == "/docs":
            return self._only("GET", method, path) or Response(
                200, self._docs_html(), "text/html; charset=utf-8")
        if path == "/":
            return self._only("GET", method, path) or json_response(200, self._index())
        return error(404, "not_found", f"no entrypoint at {path!r} (under context root "
                                       f"{self.context_root or '/'}); {self._listing()}")

    def openapi(self) -> dict:
        eps = [ep for by_method in self.routes.values() for ep in by_method.values()]
        return openapi.build(self.title, self.version, self.context_root, eps,
                             self.parameters.types())

    # -- entrypoints --------------------------------------------------------------

    def _call(self, ep: Entrypoint, req: Request, query: str) -> Response:
        try:
            if ep.takes_query:
                kwargs = ep.args_from_query(urllib.parse.parse_qs(query, keep_blank_values=True))
            else:
                body = _decode_json(req.body, empty={})
                if isinstance(body, Response):
                    return body
                kwargs = ep.args_from_json(body)
        except ArgumentError as e:
            return error(422, "invalid_argument", str(e))
        try:
            result = ep.call(kwargs)
        except Exception as e:
            log.exception("entrypoint '%s' raised %s", ep.name, type(e).__name__)
            return error(500, "internal", f"entrypoint '{ep.name}' raised "
                                          f"{type(e).__name__}: {e}")
        try:
            body = json.dumps(result, default=_to_json, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as e:
            log.error("entrypoint '%s' returned a value that cannot be sent as JSON: %s",
                      ep.name, e)
            return error(500, "internal", f"entrypoint '{ep.name}' returned a value that is "
                                          f"not JSON-serializable: {e}; return str, int, float, "
                                          "bool, None, lists, dicts or dataclasses of those")
        return Response(200, (body + "\n").encode())

    # -- parameters ---------------------------------------------------------------

    def _parameter(self, method: str, path: str, name: str, raw_body: bytes) -> Response:
        if method not in ("GET", "POST"):
            return self._not_allowed(method, path, ["GET", "POST"])
        try:
            if method == "GET":
                return json_response(200, self.parameters.describe(name))
            body = _decode_json(raw_body, empty=None)
            if isinstance(body, Response):
                return body
            if not isinstance(body, dict) or len(body) != 1 or \
                    next(iter(body)) not in ("value", name):
                return error(422, "invalid_argument",
                             f"the body to change parameter '{name}' must be "
                             f"{{\"value\": <new value>}} or {{\"{name}\": <new value>}}")
            value = self.parameters.set(name, next(iter(body.values())))
            return json_response(200, {"name": name, "value": value})
        except UnknownParameter as e:
            return error(404, "not_found", str(e))
        except TypeError as e:
            return error(422, "invalid_argument", str(e))

    # -- helpers ------------------------------------------------------------------

    def _only(self, allowed: str, method: str, path: str) -> Response | None:
        return None if method == allowed else self._not_allowed(method, path, [allowed])

    def _not_allowed(self, method: str, path: str, allowed: list[str]) -> Response:
        if "GET" in allowed and "HEAD" not in allowed:
            allowed = allowed + ["HEAD"]
        allow = ", ".join(allowed)
        return error(405, "method_not_allowed", f"{method} is not allowed on {path}; use {allow}",
                     {"Allow": allow})

    def _listing(self) -> str:
        eps = [f"{m} {p}" for p, by_method in sorted(self.routes.items())
               for m in sorted(by_method)]
        if not eps:
            return "this service has no entrypoints yet"
        return "entrypoints: " + ", ".join(eps) + f" (documented at {self.context_root}/docs)"

    def _index(self) -> dict:
        return {"service": self.title, "version": self.version,
                "entrypoints": [f"{m} {self.context_root}{p}"
                                for p, by_method in sorted(self.routes.items())
                                for m in sorted(by_method)],
                "docs": f"{self.context_root}/docs",
                "openapi": f"{self.context_root}/openapi.json"}


def _decode_json(raw: bytes, empty: Any) -> Any:
    """The decoded body, `empty` for no body, or a 400 Response for malformed JSON."""
    if not raw.strip():
        if empty is None:
            return error(400, "bad_request", "the request has no body; send a JSON object")
        return empty
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError as e:
        return error(400, "bad_request", f"the request body is not UTF-8: {e}")
    except ValueError as e:
        return error(400, "bad_request", f"the request body is not valid JSON: {e}")


def _reject_constant(name: str):
    raise ValueError(f"{name} is not allowed in JSON")


def _to_json(value: Any) -> Any:
    """json.dumps fallback for the values entrypoints commonly return."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (set, frozenset)):
        return list(value)
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} {value!r:.60} is not JSON-serializable")
