"""get_service / get_services against a fake platform (seed 000)."""

import pytest

import berth
from berth import PlatformError, ServiceNotFound, get_service, get_services
from support import free_port

REDIS = {"internal_hostname": "127.0.3.7", "ports": [6379],
         "external_urls": [], "base_paths": ["/default-redis"]}


def test_get_service_returns_the_endpoint_as_sent(fake_platform):
    fake_platform.answer("GET /api/v1/services/redis/endpoint", (200, REDIS))
    assert get_service("redis") == REDIS
    assert get_service("redis")["internal_hostname"] == "127.0.3.7"
    [req, _] = fake_platform.requests
    assert req["headers"]["Authorization"] == "Bearer tok-123"


def test_a_name_is_quoted_into_one_path_segment(fake_platform):
    fake_platform.answer("GET /api/v1/services/a%2Fb/endpoint", (200, {"ok": 1}))
    assert get_service("a/b") == {"ok": 1}


def test_an_unknown_service_is_service_not_found(fake_platform):
    fake_platform.answer("GET /api/v1/services/nope/endpoint",
                         (404, {"error": {"code": "not_found",
                                          "message": "no service 'nope' in project 'default'"}}))
    with pytest.raises(ServiceNotFound) as e:
        get_service("nope")
    assert isinstance(e.value, LookupError) and isinstance(e.value, PlatformError)
    assert e.value.status == 404 and e.value.code == "not_found"
    assert "no service 'nope' in project 'default'" in str(e.value)
    assert str(e.value).startswith("cannot look up service 'nope': GET ")


def test_other_failures_carry_the_platform_message(fake_platform):
    fake_platform.answer("GET /api/v1/services/redis/endpoint",
                         (403, {"error": {"code": "permission_denied",
                                          "message": "token of project 'other'"}}))
    with pytest.raises(PlatformError) as e:
        get_service("redis")
    assert not isinstance(e.value, ServiceNotFound)
    assert e.value.status == 403 and "token of project 'other'" in str(e.value)


def test_an_error_without_a_json_body_still_says_what_happened(fake_platform):
    fake_platform.answer("GET /api/v1/services/redis/endpoint", (502, None))
    with pytest.raises(PlatformError, match="answered 502: Bad Gateway"):
        get_service("redis")


def test_without_berth_url_the_error_says_what_to_set():
    with pytest.raises(PlatformError) as e:
        get_service("redis")
    assert "BERTH_URL is not set" in str(e.value) and "BERTH_TOKEN" in str(e.value)
    with pytest.raises(PlatformError, match="BERTH_URL is not set"):
        get_services()


def test_an_unreachable_platform(monkeypatch):
    monkeypatch.setenv("BERTH_URL", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(PlatformError, match="is unreachable"):
        get_service("redis")


def test_get_services_returns_the_services_object(fake_platform):
    endpoints = {"redis": REDIS, "hello": {"internal_hostname": "127.0.3.8", "ports": [8080],
                                           "external_urls": [], "base_paths": []}}
    fake_platform.answer("GET /api/v1/endpoints", (200, {"services": endpoints}))
    assert get_services() == endpoints
    assert fake_platform.requests[0]["headers"]["Authorization"] == "Bearer tok-123"


def test_get_services_rejects_an_answer_without_services(fake_platform):
    fake_platform.answer("GET /api/v1/endpoints", (200, {"items": []}))
    with pytest.raises(PlatformError, match="no \"services\" object"):
        get_services()


def test_the_names_are_exported():
    assert berth.get_service is get_service and berth.ServiceNotFound is ServiceNotFound
    assert issubclass(ServiceNotFound, LookupError)
