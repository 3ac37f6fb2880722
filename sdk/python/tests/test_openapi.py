"""The auto docs: /openapi.json derived from the hints, and the offline /docs page."""

import json
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Literal, Optional

import pytest
import requests

from berth import Service


@dataclass
class Point:
    x: float
    y: float = 0.0


@dataclass
class Polygon:
    name: str
    points: list[Point]
    center: Optional[Point] = None


@dataclass
class Node:
    value: int
    children: list["Node"] = field(default_factory=list)


def make_service() -> Service:
    service = Service()
    service.add_parameter("greeting_phrase", "Hello")
    service.add_parameter("retries", 3)
    service.add_parameter("verbose", False)

    @service.entrypoint
    def hello(name: str, times: int = 1) -> str:
        """Greets someone.

        Uses the greeting_phrase parameter.
        """
        return name * times

    @service.entrypoint
    def area(polygon: Polygon, scale: Optional[float] = None, tags: list[str] = (),
             weights: dict[str, float] | None = None) -> dict[str, float]:
        return {}

    @service.entrypoint
    def depth(root: Node) -> Optional[Node]:
        return None

    @service.entrypoint(method="GET", path="v1/search")
    def search(q: str, limit: int = 10, tags: Optional[list[str]] = None) -> list[Point]:
        return []

    @service.entrypoint
    def untyped(x, y=2):
        return x

    @service.entrypoint
    def sized(size: Literal["s", "m"] = "s") -> int:
        return 1

    return service


@pytest.fixture
def spec(serve, monkeypatch):
    monkeypatch.setenv("CONTEXT_ROOT", "/default-hello")
    monkeypatch.setenv("BERTH_SERVICE", "hello")
    monkeypatch.setenv("BERTH_VERSION", "4")
    svc = serve(make_service(), root="/default-hello")
    r = svc.get("/openapi.json")
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
    return r.json()


def body_schema(spec, path):
    return spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]


def result_schema(spec, path, method="post"):
    return spec["paths"][path][method]["responses"]["200"]["content"]["application/json"]["schema"]


def test_document_header(spec):
    assert spec["openapi"] == "3.1.0"
    assert spec["info"] == {"title": "hello", "version": "4"}
    assert spec["servers"] == [{"url": "/default-hello"}]


def test_one_path_per_entrypoint_plus_the_built_in_ones(spec):
    assert set(spec["paths"]) == {
        "/hello", "/area", "/depth", "/v1/search", "/untyped", "/sized", "/~health", "/~parameters",
        "/~parameters/greeting_phrase", "/~parameters/retries", "/~parameters/verbose"}
    assert set(spec["paths"]["/hello"]) == {"post"}
    assert set(spec["paths"]["/v1/search"]) == {"get"}


def test_request_body_from_hints_with_required_and_defaults(spec):
    op = spec["paths"]["/hello"]["post"]
    assert op["operationId"] == "hello"
    assert op["summary"] == "Greets someone."
    assert op["description"] == "Uses the greeting_phrase parameter."
    assert op["requestBody"]["required"] is True
    assert body_schema(spec, "/hello") == {
        "type": "object",
        "properties": {"name": {"type": "string"}, "times": {"type": "integer", "default": 1}},
        "required": ["name"], "additionalProperties": False}
    assert result_schema(spec, "/hello") == {"type": "string"}
    assert set(op["responses"]) == {"200", "400", "422", "500"}
    assert op["responses"]["422"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"}


def test_nested_dataclasses_optionals_lists_and_dicts(spec):
    assert body_schema(spec, "/area") == {
        "type": "object",
        "properties": {
            "polygon": {"$ref": "#/components/schemas/Polygon"},
            "scale": {"type": ["number", "null"], "default": None},
            "tags": {"type": "array", "items": {"type": "string"}, "default": []},
            "weights": {"type": ["object", "null"],
                        "additionalProperties": {"type": "number"}, "default": None},
        },
        "required": ["polygon"], "additionalProperties": False}
    schemas = spec["components"]["schemas"]
    assert schemas["Polygon"] == {
        "type": "object", "title": "Polygon",
        "properties": {"name": {"type": "string"},
                       "points": {"type": "array", "items": {"$ref": "#/components/schemas/Point"}},
                       "center": {"anyOf": [{"$ref": "#/components/schemas/Point"},
                                            {"type": "null"}], "default": None}},
        "required": ["name", "points"], "additionalProperties": False}
    assert schemas["Point"] == {
        "type": "object", "title": "Point",
        "properties": {"x": {"type": "number"}, "y": {"type": "number", "default": 0.0}},
        "required": ["x"], "additionalProperties": False}
    assert result_schema(spec, "/area") == {"type": "object",
                                            "additionalProperties": {"type": "number"}}


def test_a_recursive_dataclass_refers_to_itself(spec):
    node = spec["components"]["schemas"]["Node"]
    assert node["properties"]["children"] == {"type": "array",
                                              "items": {"$ref": "#/components/schemas/Node"}}
    assert node["required"] == ["value"]
    assert result_schema(spec, "/depth") == {"anyOf": [{"$ref": "#/components/schemas/Node"},
                                                       {"type": "null"}]}


def test_get_entrypoints_document_query_parameters(spec):
    op = spec["paths"]["/v1/search"]["get"]
    assert "requestBody" not in op
    assert op["parameters"] == [
        {"name": "q", "in": "query", "required": True, "schema": {"type": "string"}},
        {"name": "limit", "in": "query", "required": False,
         "schema": {"type": "integer", "default": 10}},
        {"name": "tags", "in": "query", "required": False,
         "schema": {"type": ["array", "null"], "items": {"type": "string"}, "default": None}},
    ]
    assert result_schema(spec, "/v1/search", "get") == {
        "type": "array", "items": {"$ref": "#/components/schemas/Point"}}


def test_no_hints_mean_any_value(spec):
    assert body_schema(spec, "/untyped")["properties"] == {"x": {}, "y": {"default": 2}}
    assert result_schema(spec, "/untyped") == {}


def test_literals_are_enums(spec):
    assert body_schema(spec, "/sized")["properties"] == {
        "size": {"enum": ["s", "m"], "default": "s"}}


def test_parameter_endpoints_carry_each_parameter_type(spec):
    for name, t in (("greeting_phrase", "string"), ("retries", "integer"), ("verbose", "boolean")):
        path = spec["paths"][f"/~parameters/{name}"]
        assert set(path) == {"get", "post"}
        forms = path["post"]["requestBody"]["content"]["application/json"]["schema"]["anyOf"]
        assert forms[0]["properties"] == {"value": {"type": t}}
        assert forms[1]["properties"] == {name: {"type": t}}
        got = path["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        assert got["properties"]["value"] == {"type": t}
    listing = result_schema(spec, "/~parameters", "get")
    assert listing["properties"]["parameters"]["properties"]["retries"]["properties"]["value"] \
        == {"type": "integer"}


def test_every_reference_resolves(spec):
    refs = re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(spec))
    assert refs and set(refs) <= set(spec["components"]["schemas"])


def test_the_title_falls_back_to_the_script_name(run_script):
    p = run_script("from berth import Service\nService().run()\n", name="my_model.py")
    assert requests.get(p.base + "/openapi.json", timeout=10).json()["info"] == {
        "title": "my_model", "version": "dev"}
    assert p.stop() == 0


# -- /docs ------------------------------------------------------------------------

@pytest.fixture
def docs(serve, monkeypatch):
    monkeypatch.setenv("CONTEXT_ROOT", "/default-hello")
    svc = serve(make_service(), root="/default-hello")
    r = svc.get("/docs")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "text/html; charset=utf-8"
    assert int(r.headers["Content-Length"]) == len(r.content)
    return r.text


def test_docs_is_one_self_contained_page(docs):
    assert docs.lstrip().lower().startswith("<!doctype html>")
    assert "<style>" in docs and "<script>" in docs
    assert re.findall(r"https?://", docs) == []  # no CDN, fonts or other hosts
    assert not re.search(r"<(script|link|img|iframe)[^>]*\s(src|href)=", docs)
    assert "@import" not in docs and "url(" not in docs


def test_docs_fetches_the_spec_relative_to_itself(docs):
    assert 'base + "openapi.json"' in docs
    assert 'location.pathname.replace(/\\/docs\\/?$/, "/")' in docs
    assert 'base + "~parameters"' in docs  # parameters are listed and changed from the page
    assert '"~parameters/" + encodeURIComponent(name)' in docs
    assert "<textarea" in docs or '"textarea"' in docs
    assert "Send" in docs


def test_docs_is_also_served_with_a_trailing_slash(serve):
    svc = serve(make_service())
    assert svc.get("/docs/").status_code == 200


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_docs_script_is_valid_javascript(docs, tmp_path):
    script = re.search(r"<script>(.*)</script>", docs, re.S).group(1)
    path = tmp_path / "docs.js"
    path.write_text(script)
    check = subprocess.run(["node", "--check", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


# A fake DOM just big enough for docs.html, so that node can run the page's script
# against the live service: render, then "click" Send and Set.
DOM_PRELUDE = r"""
class El {
  constructor(tag) { this.tagName = tag; this.children = []; this.value = "";
                     this.textContent = ""; this.className = ""; }
  get classList() {
    const el = this;
    return { toggle(c) { const s = new Set(el.className.split(" ").filter(Boolean));
                         s.has(c) ? s.delete(c) : s.add(c); el.className = [...s].join(" "); } };
  }
  append(...c) { this.children.push(...c); }
  replaceChildren(...c) { this.children = [...c]; }
}
const ids = {};
globalThis.document = { title: "", createElement: t => new El(t),
                        getElementById: id => (ids[id] = ids[id] || new El("div")) };
globalThis.location = { pathname: ROOT + "/docs" };
globalThis.sessionStorage = { getItem: () => null, setItem: () => {} };
const realFetch = fetch;
globalThis.fetch = (url, init) => realFetch(ORIGIN + url, init);
const text = n => typeof n === "string" ? n :
  (n.textContent || "") + " " + n.children.map(text).join(" ");
const find = (n, pred) => { if (typeof n === "string") return null; if (pred(n)) return n;
  for (const c of n.children) { const f = find(c, pred); if (f) return f; } return null; };
const until = async (cond) => { for (let i = 0; i < 200 && !cond(); i++)
  await new Promise(r => setTimeout(r, 25)); if (!cond()) throw new Error("timeout"); };
"""

DOM_TEST = r"""
(async () => {
  await until(() => ids.entrypoints && ids.entrypoints.children.length > 0 &&
                    ids.parameters && find(ids.parameters, n => n.tagName === "table"));
  const cards = ids.entrypoints.children;
  const hello = cards.find(c => text(c).includes("/hello"));
  const area = text(cards.find(c => text(c).includes("/area")));
  const out = {title: ids.title.textContent, count: cards.length,
               helloText: text(hello), areaText: area};
  const textarea = find(hello, n => n.tagName === "textarea");
  out.example = JSON.parse(textarea.value);
  textarea.value = JSON.stringify({name: "Ada", times: 2});
  await find(hello, n => n.tagName === "button").onclick();
  out.sent = text(hello.children[1].children.at(-1));
  const row = find(ids.parameters, n => n.tagName === "tr" && text(n).includes("retries"));
  find(row, n => n.tagName === "input").value = "7";
  await find(row, n => n.tagName === "button").onclick();
  out.set = text(row);
  const search = cards.find(c => text(c).includes("/v1/search"));
  find(search, n => n.tagName === "textarea").value = JSON.stringify({q: "x", tags: ["a", "b"]});
  await find(search, n => n.tagName === "button").onclick();
  out.searched = text(search.children[1].children.at(-1));
  console.log(JSON.stringify(out));
})().catch(e => { console.error(e); process.exit(1); });
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_docs_page_lists_entrypoints_and_tries_them(serve, monkeypatch, tmp_path):
    monkeypatch.setenv("CONTEXT_ROOT", "/default-hello")
    monkeypatch.setenv("BERTH_SERVICE", "hello")
    service = make_service()
    svc = serve(service, root="/default-hello")
    page = svc.get("/docs").text
    script = re.search(r"<script>(.*)</script>", page, re.S).group(1)
    harness = tmp_path / "harness.js"
    harness.write_text(f"const ROOT = '/default-hello'; const ORIGIN = '{svc.base}';\n"
                       + DOM_PRELUDE + script + DOM_TEST)
    run = subprocess.run(["node", str(harness)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["title"] == "hello"
    assert out["count"] == 6  # entrypoints only; the /~ endpoints are not listed as such
    assert "POST" in out["helloText"] and "name" in out["helloText"]
    assert "string" in out["helloText"] and "default 1" in out["helloText"]
    assert "Polygon" in out["areaText"] and "array<string>" in out["areaText"]
    assert out["example"] == {"name": "", "times": 1}
    assert "200" in out["sent"] and '"AdaAda"' in out["sent"]
    assert "200" in out["set"] and service.get_parameter("retries") == 7
    assert "200" in out["searched"] and "[]" in out["searched"]
