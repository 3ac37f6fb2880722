"""Runtime parameters: the Python API, the HTTP endpoints and BERTH_PARAMETERS."""

import json
import logging
import threading

import pytest

from berth import Service

DEFAULTS = {"greeting_phrase": "Hello", "enabled": True, "retries": 3, "ratio": 0.5,
            "tags": ["a"], "limits": {"cpu": 1}}
TYPES = {"greeting_phrase": "string", "enabled": "boolean", "retries": "integer",
         "ratio": "number", "tags": "array", "limits": "object"}


def make_service() -> Service:
    service = Service()
    for name, default in DEFAULTS.items():
        service.add_parameter(name, default)

    @service.entrypoint
    def hello(name: str) -> str:
        return f"{service.get_parameter('greeting_phrase')} {name}"

    return service


@pytest.fixture
def svc(serve):
    return serve(make_service())


# -- Python API -------------------------------------------------------------------

def test_get_parameter_returns_the_default():
    service = make_service()
    for name, default in DEFAULTS.items():
        value = service.get_parameter(name)
        assert value == default and type(value) is type(default)


def test_set_parameter_changes_the_value_and_logs_it(caplog):
    service = make_service()
    with caplog.at_level(logging.INFO, logger="berth.parameters"):
        service.set_parameter("greeting_phrase", "Bonjour")
    assert service.get_parameter("greeting_phrase") == "Bonjour"
    assert "parameter 'greeting_phrase' changed from \"Hello\" to \"Bonjour\"" in caplog.text
    assert any(r.levelno == logging.INFO and r.name == "berth.parameters"
               for r in caplog.records)


def test_a_float_parameter_accepts_an_int_and_stores_a_float():
    service = make_service()
    service.set_parameter("ratio", 2)
    assert service.get_parameter("ratio") == 2.0 and type(service.get_parameter("ratio")) is float


@pytest.mark.parametrize("name,value,message", [
    ("greeting_phrase", 3, "parameter 'greeting_phrase' is of type string; got integer 3"),
    ("retries", True, "parameter 'retries' is of type integer; got boolean true"),
    ("retries", 2.5, "parameter 'retries' is of type integer; got number 2.5"),
    ("enabled", 1, "parameter 'enabled' is of type boolean; got integer 1"),
    ("ratio", "0.5", "parameter 'ratio' is of type number; got string \"0.5\""),
    ("tags", "a", "parameter 'tags' is of type array; got string \"a\""),
    ("limits", None, "parameter 'limits' is of type object; got null"),
])
def test_set_parameter_with_the_wrong_type_raises_type_error(name, value, message):
    service = make_service()
    with pytest.raises(TypeError) as e:
        service.set_parameter(name, value)
    assert str(e.value) == message
    assert service.get_parameter(name) == DEFAULTS[name]


def test_a_value_that_is_not_json_is_refused():
    service = make_service()
    with pytest.raises(TypeError, match="must be JSON-serializable"):
        service.set_parameter("tags", [object()])


def test_an_unknown_parameter_is_a_key_error_listing_the_known_ones():
    service = make_service()
    with pytest.raises(KeyError) as e:
        service.get_parameter("greting_phrase")
    assert str(e.value) == ("unknown parameter 'greting_phrase'; defined parameters: enabled, "
                            "greeting_phrase, limits, ratio, retries, tags. Define it first with "
                            "add_parameter(name, default)")
    with pytest.raises(KeyError):
        service.set_parameter("nope", 1)


@pytest.mark.parametrize("default", [None, 1j, (1, 2), {1, 2}, b"x"])
def test_a_default_of_an_unsupported_type_is_refused(default):
    with pytest.raises(TypeError, match="must be a bool, int, float, str, list or dict"):
        Service().add_parameter("p", default)


def test_a_parameter_is_defined_once():
    service = make_service()
    with pytest.raises(ValueError, match="parameter 'retries' is already defined"):
        service.add_parameter("retries", 4)


@pytest.mark.parametrize("name", ["", "a/b", "1st", "with space", None])
def test_invalid_parameter_names_are_refused(name):
    with pytest.raises(ValueError, match="is not valid"):
        Service().add_parameter(name, 1)


def test_values_are_copied_so_callers_cannot_change_them_behind_the_lock():
    service = make_service()
    tags = service.get_parameter("tags")
    tags.append("mutated")
    assert service.get_parameter("tags") == ["a"]
    new = ["b"]
    service.set_parameter("tags", new)
    new.append("mutated")
    assert service.get_parameter("tags") == ["b"]


def test_concurrent_writers_and_readers_always_see_a_whole_value():
    service = make_service()
    errors = []

    def write(i):
        for j in range(200):
            service.set_parameter("limits", {"writer": i, "step": j, "copy": [i, j]})

    def read():
        for _ in range(400):
            v = service.get_parameter("limits")
            if "writer" in v and v["copy"] != [v["writer"], v["step"]]:
                errors.append(v)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    threads += [threading.Thread(target=read) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


# -- HTTP -------------------------------------------------------------------------

def test_list_parameters_with_value_type_and_default(svc):
    r = svc.get("/~parameters")
    assert r.status_code == 200
    assert r.json() == {"parameters": {
        name: {"value": DEFAULTS[name], "type": TYPES[name], "default": DEFAULTS[name]}
        for name in DEFAULTS}}


def test_get_one_parameter(svc):
    assert svc.get("/~parameters/retries").json() == {"name": "retries", "value": 3,
                                                      "type": "integer"}


@pytest.mark.parametrize("body", [{"value": "Bonjour"}, {"greeting_phrase": "Bonjour"}])
def test_change_a_parameter_with_either_body_form(svc, body):
    r = svc.post("/~parameters/greeting_phrase", json=body)
    assert r.status_code == 200
    assert r.json() == {"name": "greeting_phrase", "value": "Bonjour"}
    assert svc.service.get_parameter("greeting_phrase") == "Bonjour"
    assert svc.post("/hello", json={"name": "Ada"}).json() == "Bonjour Ada"
    listed = svc.get("/~parameters").json()["parameters"]["greeting_phrase"]
    assert listed == {"value": "Bonjour", "type": "string", "default": "Hello"}


def test_change_a_float_parameter_with_an_int(svc):
    assert svc.post("/~parameters/ratio", json={"value": 1}).json() == {"name": "ratio",
                                                                       "value": 1.0}


@pytest.mark.parametrize("name,value,expected", [
    ("retries", "3", "integer"), ("enabled", "yes", "boolean"), ("tags", {}, "array"),
    ("limits", [], "object"), ("greeting_phrase", None, "string"), ("ratio", False, "number")])
def test_changing_to_the_wrong_type_is_422_naming_parameter_and_type(svc, name, value, expected):
    r = svc.post(f"/~parameters/{name}", json={"value": value})
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "invalid_argument"
    assert error["message"].startswith(f"parameter '{name}' is of type {expected}; got ")
    assert svc.service.get_parameter(name) == DEFAULTS[name]


@pytest.mark.parametrize("method", ["get", "post"])
def test_an_unknown_parameter_is_404(svc, method):
    r = getattr(svc.http, method)(svc.url("/~parameters/nope"), json={"value": 1})
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"
    assert "unknown parameter 'nope'; defined parameters: enabled, greeting_phrase" in \
        r.json()["error"]["message"]


@pytest.mark.parametrize("body", [{}, {"value": 1, "retries": 2}, {"other": 1}, [1], 5])
def test_a_body_of_the_wrong_shape_is_422_showing_the_right_one(svc, body):
    r = svc.http.post(svc.url("/~parameters/retries"), data=json.dumps(body))
    assert r.status_code == 422
    assert r.json()["error"]["message"] == (
        "the body to change parameter 'retries' must be "
        "{\"value\": <new value>} or {\"retries\": <new value>}")


@pytest.mark.parametrize("raw", [b"", b"{value: 1}"])
def test_a_missing_or_malformed_body_is_400(svc, raw):
    r = svc.http.post(svc.url("/~parameters/retries"), data=raw)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "bad_request"


def test_other_methods_are_405_with_allow(svc):
    r = svc.http.put(svc.url("/~parameters/retries"), json={"value": 1})
    assert r.status_code == 405
    assert r.headers["Allow"] == "GET, POST, HEAD"
    r = svc.post("/~parameters", json={})
    assert r.status_code == 405
    assert r.headers["Allow"] == "GET, HEAD"


# -- BERTH_PARAMETERS -------------------------------------------------------------

def test_stored_values_override_defaults_when_their_type_fits(monkeypatch, caplog):
    monkeypatch.setenv("BERTH_PARAMETERS", json.dumps(
        {"greeting_phrase": "Bonjour", "retries": 5, "ratio": 2, "enabled": "yes"}))
    with caplog.at_level(logging.WARNING):
        service = make_service()
    assert service.get_parameter("greeting_phrase") == "Bonjour"
    assert service.get_parameter("retries") == 5
    assert service.get_parameter("ratio") == 2.0
    assert service.get_parameter("enabled") is True  # "yes" is not a boolean: ignored
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["ignoring the stored value of parameter 'enabled' from BERTH_PARAMETERS: "
                        "parameter 'enabled' is of type boolean; got string \"yes\"; using the "
                        "default True"]


def test_stored_values_keep_the_code_default_as_the_default(monkeypatch, serve):
    monkeypatch.setenv("BERTH_PARAMETERS", '{"greeting_phrase": "Bonjour"}')
    svc = serve(make_service())
    assert svc.get("/~parameters").json()["parameters"]["greeting_phrase"] == {
        "value": "Bonjour", "type": "string", "default": "Hello"}
    assert svc.post("/hello", json={"name": "Ada"}).json() == "Bonjour Ada"


@pytest.mark.parametrize("text,warning", [
    ("{not json", "ignoring BERTH_PARAMETERS: it is not valid JSON"),
    ("[1, 2]",
     "ignoring BERTH_PARAMETERS: expected a JSON object like {\"name\": value}, got list"),
])
def test_a_malformed_berth_parameters_is_a_warning_not_a_crash(monkeypatch, caplog, text, warning):
    monkeypatch.setenv("BERTH_PARAMETERS", text)
    with caplog.at_level(logging.WARNING):
        service = make_service()
    assert service.get_parameter("greeting_phrase") == "Hello"
    assert warning in caplog.text


def test_a_stored_value_for_an_undefined_parameter_is_reported_at_start(monkeypatch, caplog, serve):
    monkeypatch.setenv("BERTH_PARAMETERS", '{"greeting_phrase": "Hi", "old_knob": 1}')
    with caplog.at_level(logging.WARNING):
        serve(make_service())
    assert "BERTH_PARAMETERS sets 'old_knob', which this service does not define" in caplog.text
