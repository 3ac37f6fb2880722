"""Entrypoint arguments over HTTP: every supported hint, and every way to get one wrong."""

import json
from dataclasses import dataclass, field
from typing import Any, Dict, List, Literal, Optional, Union

import pytest

from berth import Service
from support import PLATFORM_VARS, Running


@dataclass
class Point:
    x: float
    y: float
    label: str = ""


@dataclass
class Shape:
    name: str
    points: list[Point]
    center: Optional[Point] = None


@dataclass
class Tree:
    value: int
    children: list["Tree"] = field(default_factory=list)


@dataclass
class Positive:
    n: int

    def __post_init__(self):
        if self.n <= 0:
            raise ValueError("n must be positive")


def make_service() -> Service:
    service = Service()

    @service.entrypoint
    def ints(n: int) -> int:
        return n * 2

    @service.entrypoint
    def floats(x: float) -> float:
        return x / 2

    @service.entrypoint
    def strs(s: str) -> str:
        return s.upper()

    @service.entrypoint
    def bools(b: bool) -> bool:
        return not b

    @service.entrypoint
    def lists(items: list) -> int:
        return len(items)

    @service.entrypoint
    def typed_list(items: list[int]) -> int:
        return sum(items)

    @service.entrypoint
    def typing_list(items: List[str]) -> str:
        return ",".join(items)

    @service.entrypoint
    def dicts(d: dict) -> list:
        return sorted(d)

    @service.entrypoint
    def typed_dict(d: dict[str, float]) -> float:
        return sum(d.values())

    @service.entrypoint
    def typing_dict(d: Dict[str, int]) -> int:
        return len(d)

    @service.entrypoint
    def optional(x: Optional[int] = None) -> Optional[int]:
        return None if x is None else x + 1

    @service.entrypoint
    def pipe_optional(x: int | None) -> str:
        return repr(x)

    @service.entrypoint
    def union(v: Union[int, str]) -> str:
        return type(v).__name__

    @service.entrypoint
    def shape(s: Shape) -> Shape:
        assert isinstance(s, Shape) and all(isinstance(p, Point) for p in s.points)
        assert s.center is None or isinstance(s.center, Point)
        return s

    @service.entrypoint
    def tree(t: Tree) -> int:
        return t.value + sum(tree(c) for c in t.children)

    @service.entrypoint
    def positive(p: Positive) -> int:
        return p.n

    @service.entrypoint
    def anything(x: Any, y) -> list:
        return [x, y]

    @service.entrypoint
    def defaults(a: int, b: str = "b", c: Optional[list[int]] = None) -> dict:
        return {"a": a, "b": b, "c": c}

    @service.entrypoint
    def nothing() -> None:
        return None

    @service.entrypoint
    def boom(x: int) -> int:
        return x // 0

    @service.entrypoint
    def unserializable() -> dict:
        return {"x": object()}

    @service.entrypoint(method="GET", path="search")
    def search(q: str, limit: int = 10, exact: bool = False, ratio: float = 0.5,
               tags: Optional[list[str]] = None, since: Optional[int] = None,
               point: Optional[Point] = None) -> dict:
        return {"q": q, "limit": limit, "exact": exact, "ratio": ratio, "tags": tags,
                "since": since, "point": None if point is None else [point.x, point.y]}

    @service.entrypoint
    def size(s: Literal["small", "large"], n: Literal[1, 2] = 1) -> str:
        return f"{s}{n}"

    @service.entrypoint(method="GET", path="pick")
    def pick(v: Union[int, str], s: Literal["small", "large"] = "small",
             n: Literal[1, 2] = 1) -> list:
        return [v, s, n]

    @service.entrypoint(method="PUT", path="v1/items")
    def put_item(name: str) -> str:
        return f"put {name}"

    @service.entrypoint(method="GET", path="v1/items")
    def get_items() -> list:
        return ["a", "b"]

    return service


@pytest.fixture(scope="module")
def svc():
    """One service for the module: these tests only read from it."""
    with pytest.MonkeyPatch.context() as mp:
        for name in PLATFORM_VARS:
            mp.delenv(name, raising=False)
        service = make_service()
        host, port = service.start(host="127.0.0.1", port=0)
    yield Running(service, host, port)
    service.stop()


OK_CASES = [
    ("ints", {"n": 21}, 42),
    ("ints", {"n": -3}, -6),
    ("floats", {"x": 3}, 1.5),  # an int is a valid float
    ("floats", {"x": 1.0}, 0.5),
    ("strs", {"s": "ada"}, "ADA"),
    ("strs", {"s": ""}, ""),
    ("bools", {"b": True}, False),
    ("lists", {"items": [1, "a", None, {}]}, 4),
    ("typed_list", {"items": [1, 2, 3]}, 6),
    ("typed_list", {"items": []}, 0),
    ("typing_list", {"items": ["a", "b"]}, "a,b"),
    ("dicts", {"d": {"b": 1, "a": [2]}}, ["a", "b"]),
    ("typed_dict", {"d": {"a": 1, "b": 2.5}}, 3.5),
    ("typing_dict", {"d": {"a": 1}}, 1),
    ("optional", {}, None),
    ("optional", {"x": None}, None),
    ("optional", {"x": 4}, 5),
    ("pipe_optional", {"x": None}, "None"),
    ("pipe_optional", {"x": 7}, "7"),
    ("union", {"v": 1}, "int"),
    ("union", {"v": "1"}, "str"),
    ("shape", {"s": {"name": "tri",
                     "points": [{"x": 0, "y": 1}, {"x": 2.5, "y": 3, "label": "p"}]}},
     {"name": "tri", "points": [{"x": 0.0, "y": 1.0, "label": ""},
                                {"x": 2.5, "y": 3.0, "label": "p"}], "center": None}),
    ("shape", {"s": {"name": "c", "points": [], "center": {"x": 1, "y": 1}}},
     {"name": "c", "points": [], "center": {"x": 1.0, "y": 1.0, "label": ""}}),
    ("tree", {"t": {"value": 1,
                    "children": [{"value": 2}, {"value": 3, "children": [{"value": 4}]}]}},
     10),
    ("positive", {"p": {"n": 3}}, 3),
    ("anything", {"x": {"deep": [1]}, "y": "free"}, [{"deep": [1]}, "free"]),
    ("defaults", {"a": 1}, {"a": 1, "b": "b", "c": None}),
    ("defaults", {"a": 1, "b": "x", "c": [1]}, {"a": 1, "b": "x", "c": [1]}),
    ("nothing", {}, None),
    ("size", {"s": "large"}, "large1"),
    ("size", {"s": "small", "n": 2}, "small2"),
]


@pytest.mark.parametrize("name,body,expected", OK_CASES)
def test_valid_arguments_reach_the_function_converted(svc, name, body, expected):
    r = svc.post(f"/{name}", json=body)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/json"
    assert r.json() == expected
    assert type(r.json()) is type(expected)


def test_a_post_without_a_body_means_no_arguments(svc):
    r = svc.http.post(svc.url("/nothing"), data=b"")
    assert r.status_code == 200 and r.json() is None
    r = svc.http.post(svc.url("/ints"), data=b"")
    assert r.status_code == 422
    assert r.json()["error"]["message"] == "argument 'n': missing required argument (integer)"


BAD_CASES = [
    ("strs", {"s": 3}, "argument 's': expected string, got integer 3"),
    ("strs", {"s": None}, "argument 's': expected string, got null"),
    ("ints", {"n": True}, "argument 'n': expected integer, got boolean true"),
    ("ints", {"n": 1.5}, "argument 'n': expected integer, got number 1.5"),
    ("ints", {"n": "3"}, "argument 'n': expected integer, got string \"3\""),
    ("floats", {"x": False}, "argument 'x': expected number, got boolean false"),
    ("floats", {"x": "1.0"}, "argument 'x': expected number, got string \"1.0\""),
    ("bools", {"b": 1}, "argument 'b': expected boolean, got integer 1"),
    ("bools", {"b": "true"}, "argument 'b': expected boolean, got string \"true\""),
    ("lists", {"items": {"a": 1}}, "argument 'items': expected array, got object {\"a\": 1}"),
    ("typed_list", {"items": [1, "2"]}, "argument 'items[1]': expected integer, got string \"2\""),
    ("typing_list", {"items": "ab"}, "argument 'items': expected array, got string \"ab\""),
    ("dicts", {"d": [1]}, "argument 'd': expected object, got array [1]"),
    ("typed_dict", {"d": {"a": "x"}}, "argument 'd.a': expected number, got string \"x\""),
    ("optional", {"x": "4"}, "argument 'x': expected integer or null, got string \"4\""),
    ("pipe_optional", {}, "argument 'x': missing required argument (integer or null)"),
    ("union", {"v": 1.5}, "argument 'v': expected integer or string, got number 1.5"),
    ("shape", {"s": []}, "argument 's': expected object (Shape), got array []"),
    ("shape", {"s": {"name": "t"}}, "argument 's.points': missing required field (array)"),
    ("shape", {"s": {"name": "t", "points": [], "color": "red"}},
     "argument 's.color': unknown field for Shape; accepted: name, points, center"),
    ("shape", {"s": {"name": "t", "points": [{"x": 1, "y": "2"}]}},
     "argument 's.points[0].y': expected number, got string \"2\""),
    ("shape", {"s": {"name": "t", "points": [], "center": {"x": 1}}},
     "argument 's.center.y': missing required field (number)"),
    ("tree", {"t": {"value": 1, "children": [{"value": "2"}]}},
     "argument 't.children[0].value': expected integer, got string \"2\""),
    ("positive", {"p": {"n": 0}}, "argument 'p': invalid Positive: n must be positive"),
    ("ints", {}, "argument 'n': missing required argument (integer)"),
    ("ints", {"n": 1, "m": 2}, "argument 'm': unknown argument for entrypoint 'ints'; accepted: n"),
    ("nothing", {"x": 1},
     "argument 'x': unknown argument for entrypoint 'nothing'; accepted: none"),
    ("defaults", {"a": 1, "c": [1, None]}, "argument 'c[1]': expected integer, got null"),
    ("size", {"s": "medium"},
     "argument 's': expected one of \"small\", \"large\", got string \"medium\""),
    ("size", {"s": "small", "n": True}, "argument 'n': expected one of 1, 2, got boolean true"),
]


@pytest.mark.parametrize("name,body,message", BAD_CASES)
def test_invalid_arguments_are_422_naming_the_argument(svc, name, body, message):
    r = svc.post(f"/{name}", json=body)
    assert r.status_code == 422, r.text
    assert r.json() == {"error": {"code": "invalid_argument", "message": message}}


@pytest.mark.parametrize("body", [[1, 2], "text", 3, None, True])
def test_a_body_that_is_not_an_object_is_422(svc, body):
    r = svc.post("/ints", data=json.dumps(body))
    assert r.status_code == 422
    message = r.json()["error"]["message"]
    assert message.startswith("request body must be a JSON object of named arguments like "
                              "{\"n\": ...}, got ")


@pytest.mark.parametrize("raw", [b"{", b"{'n': 1}", b"n=1", b"{\"n\": NaN}", b"\xff\xfe"])
def test_malformed_json_is_400(svc, raw):
    r = svc.http.post(svc.url("/ints"), data=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "bad_request"
    assert "request body is not" in error["message"]


def test_an_exception_in_user_code_is_500_with_its_message_and_logged(svc, caplog):
    r = svc.post("/boom", json={"x": 1})
    assert r.status_code == 500
    assert r.json() == {"error": {"code": "internal", "message":
                                  "entrypoint 'boom' raised ZeroDivisionError: "
                                  "integer division or modulo by zero"}}
    records = [rec for rec in caplog.records if "entrypoint 'boom' raised" in rec.getMessage()]
    assert records and records[0].exc_info and records[0].exc_info[0] is ZeroDivisionError


def test_a_result_that_is_not_json_is_500_saying_so(svc):
    r = svc.post("/unserializable", json={})
    assert r.status_code == 500
    assert "not JSON-serializable" in r.json()["error"]["message"]


# -- GET entrypoints: arguments from the query string ---------------------------

def test_get_entrypoint_converts_query_values_by_type(svc):
    r = svc.get("/search", params=[("q", "ada"), ("limit", "3"), ("exact", "true"),
                                   ("ratio", "2.5"), ("tags", "a"), ("tags", "b"),
                                   ("since", "null"), ("point", '{"x": 1, "y": 2}')])
    assert r.status_code == 200, r.text
    assert r.json() == {"q": "ada", "limit": 3, "exact": True, "ratio": 2.5, "tags": ["a", "b"],
                        "since": None, "point": [1.0, 2.0]}


@pytest.mark.parametrize("params,expected", [
    ({"v": "7"}, [7, "small", 1]), ({"v": "seven", "s": "large", "n": "2"}, ["seven", "large", 2])])
def test_get_entrypoint_reads_unions_and_literals(svc, params, expected):
    assert svc.get("/pick", params=params).json() == expected


def test_get_entrypoint_rejects_a_value_outside_a_literal(svc):
    r = svc.get("/pick", params={"v": "1", "n": "3"})
    assert r.status_code == 422
    assert r.json()["error"]["message"] == "argument 'n': expected one of 1, 2, got '3'"


def test_get_entrypoint_uses_defaults_for_absent_arguments(svc):
    r = svc.get("/search", params={"q": ""})
    assert r.json() == {"q": "", "limit": 10, "exact": False, "ratio": 0.5, "tags": None,
                        "since": None, "point": None}


@pytest.mark.parametrize("text,expected", [("1", True), ("yes", True), ("FALSE", False),
                                           ("off", False), ("0", False)])
def test_get_entrypoint_reads_booleans(svc, text, expected):
    assert svc.get("/search", params={"q": "x", "exact": text}).json()["exact"] is expected


@pytest.mark.parametrize("params,message", [
    ({}, "argument 'q': missing required argument (string); pass it in the query string: ?q=..."),
    ({"q": "x", "limit": "ten"}, "argument 'limit': expected integer, got 'ten'"),
    ({"q": "x", "limit": "1.5"}, "argument 'limit': expected integer, got '1.5'"),
    ({"q": "x", "ratio": "nan"}, "argument 'ratio': expected number, got 'nan'"),
    ({"q": "x", "exact": "maybe"},
     "argument 'exact': expected boolean (true or false), got 'maybe'"),
    ({"q": "x", "since": "soon"}, "argument 'since': expected integer, got 'soon'"),
    ({"q": "x", "point": "{"},
     "argument 'point': expected object (Point) written as JSON, got '{'"),
    ({"q": "x", "point": '{"x": 1}'}, "argument 'point.y': missing required field (number)"),
    ({"q": "x", "page": "2"}, "argument 'page': unknown argument for entrypoint 'search'; "
                              "accepted: q, limit, exact, ratio, tags, since, point"),
    ([("q", "a"), ("q", "b")], "argument 'q': given 2 times in the query string; give it once"),
])
def test_get_entrypoint_rejects_bad_query_values_with_422(svc, params, message):
    r = svc.get("/search", params=params)
    assert r.status_code == 422, r.text
    assert r.json()["error"] == {"code": "invalid_argument", "message": message}


def test_custom_paths_and_methods_share_a_path(svc):
    assert svc.http.put(svc.url("/v1/items"), json={"name": "x"}).json() == "put x"
    assert svc.get("/v1/items").json() == ["a", "b"]
    r = svc.post("/v1/items", json={})
    assert r.status_code == 405
    assert r.headers["Allow"] == "GET, PUT, HEAD"


def test_the_decorated_function_is_returned_unchanged():
    service = Service()

    def add(a: int, b: int = 1) -> int:
        return a + b

    assert service.entrypoint(add) is add
    assert service.entrypoint(method="GET")(add) is not None  # same function, second route
    assert add(2) == 3


# -- mistakes caught when decorating --------------------------------------------

class Custom:
    pass


GENERIC = "is not supported; use int, float, str, bool, list[T], dict[str, T], Optional[T]"


@pytest.mark.parametrize("hint,needle", [
    (tuple[int, int], "tuple[int, int] " + GENERIC),
    (set, "set " + GENERIC),
    (Custom, "Custom " + GENERIC),
    (list[complex], "complex " + GENERIC),
    (dict[int, str], "JSON object keys are strings, so use dict[str, T]"),
    (Literal[b"x"], "Literal values must be strings, numbers, booleans or None"),
])
def test_an_unsupported_hint_fails_at_decoration(hint, needle):
    service = Service()

    def f(x):
        return x
    f.__annotations__ = {"x": hint}
    with pytest.raises(TypeError) as e:
        service.entrypoint(f)
    assert "entrypoint 'f', argument 'x'" in str(e.value)
    assert needle in str(e.value)


def test_an_unsupported_dataclass_field_names_the_field():
    @dataclass
    class Bad:
        when: complex

    def f(b: Bad):
        return b

    with pytest.raises(TypeError, match="field Bad.when: type hint complex is not supported"):
        Service().entrypoint(f)


def test_star_arguments_are_refused():
    service = Service()

    def spread(*rest):
        return rest

    def options(**kw):
        return kw

    with pytest.raises(TypeError, match="argument 'rest' is variadic positional"):
        service.entrypoint(spread)
    with pytest.raises(TypeError, match="argument 'kw' is variadic keyword"):
        service.entrypoint(options)


@pytest.mark.parametrize("path", ["docs", "openapi.json", "~parameters", "~anything", "/"])
def test_reserved_paths_are_refused(path):
    with pytest.raises(ValueError, match="reserved by berth"):
        Service().entrypoint(path=path)(lambda: None)


@pytest.mark.parametrize("path", ["a b", "a//b", "x?y", "é"])
def test_invalid_paths_are_refused(path):
    with pytest.raises(ValueError, match="is not valid"):
        Service().entrypoint(path=path)(lambda: None)


def test_the_same_route_twice_is_refused():
    service = Service()

    @service.entrypoint
    def hello():
        return 1

    with pytest.raises(ValueError, match=r"POST /hello is already served by 'hello'"):
        service.entrypoint(path="hello")(lambda: 2)


def test_an_unknown_method_is_refused():
    with pytest.raises(ValueError, match="method 'FETCH' is not supported"):
        Service().entrypoint(method="FETCH")(lambda: None)
