"""The native API under /api/v1: projects, tokens and the service registry, good and bad input.

Every error answer is checked for the exact shape {"error": {"code", "message"}}, and messages
for naming what was wrong, because a user reads them.
"""
import http.client
import io
import json
import os
import re
import tarfile
import threading
import time
from urllib.parse import urlparse

import pytest
import requests

from conftest import (assert_native_error, create_project, create_token, inert_bundle,
                      project_with_token, push_bundle, unique)

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
MIB = 1 << 20

# A definition like CloudFlow's examples; every bad-definition case below breaks one field of
# it. Its tag is an inert bundle (create_service pushes it), so nothing runs. The memory is small because berth admits
# reservations against the machine's memory, and these tests store many definitions.
GOOD_DEF = {
    "container-tag": "latest",
    "memory-reservation": 10,
    "memory-limit": 15,
    "container-port": 80,
    "environment": [{"name": "CONTEXT_ROOT", "value": "/default-x"}],
}


def create_service(d, name=None, token=None, project=None):
    name = name or unique("s")
    path = "/api/v1/services" + (f"?project={project}" if project else "")
    r = d.post(path, json={"name": name}, token=token)
    assert r.status_code == 201, r.text
    push_bundle(d, name, "latest", token=token, project=project, bundle=inert_bundle())
    return name


# --- health and whoami -------------------------------------------------------------------------


def test_health_needs_no_token(daemon):
    r = daemon.get("/api/v1/health", token="")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}
    assert r.headers["Content-Type"].startswith("application/json")


def test_whoami_admin(daemon):
    r = daemon.get("/api/v1/whoami")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["admin"] is True
    assert body["project"] is None
    assert re.fullmatch(r"tk_[0-9a-f]{12}", body["token_id"]), body


def test_whoami_project_token(daemon):
    project = create_project(daemon)
    tok = create_token(daemon, project=project)
    body = daemon.get("/api/v1/whoami", token=tok["token"]).json()
    assert body == {"token_id": tok["id"], "admin": False, "project": project}


# --- projects ----------------------------------------------------------------------------------


def test_projects_create_list_get(daemon):
    name = unique("proj")
    r = daemon.post("/api/v1/projects", json={"name": name})
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["name"] == name
    assert RFC3339.match(created["created_at"]), created

    listed = daemon.get("/api/v1/projects").json()["projects"]
    names = [p["name"] for p in listed]
    assert "default" in names and name in names
    assert names == sorted(names)  # the store lists by name

    r = daemon.get(f"/api/v1/projects/{name}")
    assert r.status_code == 200
    assert r.json() == created


def test_project_token_sees_only_its_project(daemon):
    mine, token = project_with_token(daemon)
    other = create_project(daemon)
    listed = daemon.get("/api/v1/projects", token=token).json()["projects"]
    assert [p["name"] for p in listed] == [mine]
    assert daemon.get(f"/api/v1/projects/{mine}", token=token).status_code == 200
    assert_native_error(daemon.get(f"/api/v1/projects/{other}", token=token), 403,
                        "permission_denied", contains=(mine, other))


def test_get_unknown_project(daemon):
    assert_native_error(daemon.get("/api/v1/projects/nosuchproject"), 404, "not_found",
                        contains="nosuchproject")


def test_only_admin_creates_projects(daemon, project):
    name, token = project
    r = daemon.post("/api/v1/projects", json={"name": unique("q")}, token=token)
    assert_native_error(r, 403, "permission_denied", contains="admin")


def test_duplicate_project_is_409(daemon):
    name = create_project(daemon)
    r = daemon.post("/api/v1/projects", json={"name": name})
    assert_native_error(r, 409, "already_exists", contains=name)


@pytest.mark.parametrize("name,rule", [
    ("", "empty"),
    ("Bad", "lowercase letter"),
    ("1abc", "begin with a lowercase letter"),
    ("_abc", "begin with a lowercase letter"),
    ("a-b", "only lowercase letters, digits and '_'"),
    ("has space", "only lowercase letters, digits and '_'"),
    ("café", "only lowercase letters, digits and '_'"),
    ("a" * 25, "at most 24"),
])
def test_bad_project_names(daemon, name, rule):
    r = daemon.post("/api/v1/projects", json={"name": name})
    assert_native_error(r, 400, "invalid_argument", contains=rule)
    # Nothing was created under a mangled name either.
    names = [p["name"] for p in daemon.get("/api/v1/projects").json()["projects"]]
    assert name not in names


def test_project_name_of_24_characters_is_fine(daemon):
    name = unique("l")
    name = name + "x" * (24 - len(name))
    assert create_project(daemon, name) == name


@pytest.mark.parametrize("body,message", [
    ({}, "name: is required"),
    ({"name": 5}, "name: must be a string"),
    (["x"], "JSON object"),
])
def test_project_body_errors(daemon, body, message):
    assert_native_error(daemon.post("/api/v1/projects", json=body), 400, "invalid_argument",
                        contains=message)


# --- tokens ------------------------------------------------------------------------------------


def test_create_project_token(daemon):
    project = create_project(daemon)
    r = daemon.post("/api/v1/tokens", json={"project": project, "description": "ci runner"})
    assert r.status_code == 201, r.text
    t = r.json()
    assert re.fullmatch(r"berth_[0-9a-f]{64}", t["token"]), t
    assert t["project"] == project and t["admin"] is False and t["revoked"] is False
    assert t["description"] == "ci runner"
    assert RFC3339.match(t["created_at"])
    assert "revoked_at" not in t
    # The secret works right away and belongs to the project.
    who = daemon.get("/api/v1/whoami", token=t["token"]).json()
    assert who["project"] == project and who["token_id"] == t["id"]


def test_create_admin_token(daemon):
    t = create_token(daemon, admin=True, description="second admin")
    assert t["admin"] is True and t["project"] is None
    assert daemon.get("/api/v1/whoami", token=t["token"]).json()["admin"] is True


def test_admin_token_without_project_gets_default(daemon):
    t = create_token(daemon)
    assert t["project"] == "default" and t["admin"] is False


def test_project_token_creates_token_for_own_project(daemon, project):
    name, token = project
    # No body at all is allowed: a token for the caller's own project.
    r = daemon.post("/api/v1/tokens", token=token)
    assert r.status_code == 201, r.text
    assert r.json()["project"] == name


def test_project_token_cannot_create_for_another_project(daemon, project):
    name, token = project
    other = create_project(daemon)
    r = daemon.post("/api/v1/tokens", json={"project": other}, token=token)
    assert_native_error(r, 403, "permission_denied", contains=other)


def test_project_token_cannot_create_admin_token(daemon, project):
    name, token = project
    r = daemon.post("/api/v1/tokens", json={"admin": True}, token=token)
    assert_native_error(r, 403, "permission_denied", contains="admin")


def test_token_for_unknown_project(daemon):
    r = daemon.post("/api/v1/tokens", json={"project": "nosuchproject"})
    assert_native_error(r, 404, "not_found", contains="nosuchproject")


@pytest.mark.parametrize("body,message", [
    ({"admin": "yes"}, "admin: must be true or false"),
    ({"project": 7}, "project: must be a string"),
    ({"description": 7}, "description: must be a string"),
    ({"description": "x" * 257}, "at most 256"),
    ({"admin": True, "project": "default"}, "admin:"),
    ({"colour": "red"}, "colour: unknown field"),
    ([], "JSON object"),
])
def test_token_body_errors(daemon, body, message):
    before = len(daemon.get("/api/v1/tokens").json()["tokens"])
    assert_native_error(daemon.post("/api/v1/tokens", json=body), 400, "invalid_argument",
                        contains=message)
    assert len(daemon.get("/api/v1/tokens").json()["tokens"]) == before


def test_list_and_get_tokens(daemon):
    p1, p2 = create_project(daemon), create_project(daemon)
    t1 = create_token(daemon, project=p1, description="one")
    t2 = create_token(daemon, project=p2)

    all_tokens = daemon.get("/api/v1/tokens").json()["tokens"]
    ids = {t["id"] for t in all_tokens}
    assert {t1["id"], t2["id"]} <= ids
    # Secrets are shown once, at creation; never listed.
    assert all("token" not in t for t in all_tokens)

    only_p1 = daemon.get(f"/api/v1/tokens?project={p1}").json()["tokens"]
    assert [t["id"] for t in only_p1] == [t1["id"]]

    # A project token lists its own project's tokens only, with or without ?project=.
    for path in ("/api/v1/tokens", f"/api/v1/tokens?project={p1}"):
        seen = daemon.get(path, token=t1["token"]).json()["tokens"]
        assert {t["project"] for t in seen} == {p1}, seen
    assert_native_error(daemon.get(f"/api/v1/tokens?project={p2}", token=t1["token"]), 403,
                        "permission_denied")

    got = daemon.get(f"/api/v1/tokens/{t1['id']}").json()
    assert got["id"] == t1["id"] and got["description"] == "one" and "token" not in got
    assert daemon.get(f"/api/v1/tokens/{t1['id']}", token=t1["token"]).status_code == 200


def test_get_unknown_token(daemon):
    assert_native_error(daemon.get("/api/v1/tokens/tk_000000000000"), 404, "not_found")


def test_project_token_cannot_see_or_revoke_other_projects_tokens(daemon):
    p1, p2 = create_project(daemon), create_project(daemon)
    t1 = create_token(daemon, project=p1)
    t2 = create_token(daemon, project=p2)
    admin_id = daemon.get("/api/v1/whoami").json()["token_id"]
    for victim in (t2["id"], admin_id):
        # 404, not 403: a project token cannot even learn that the id exists.
        assert_native_error(daemon.get(f"/api/v1/tokens/{victim}", token=t1["token"]), 404,
                            "not_found")
        assert_native_error(daemon.delete(f"/api/v1/tokens/{victim}", token=t1["token"]), 404,
                            "not_found")
    # The other project's token still works.
    assert daemon.get("/api/v1/whoami", token=t2["token"]).status_code == 200


def test_revoke_token(daemon):
    project = create_project(daemon)
    t = create_token(daemon, project=project)
    assert daemon.get("/api/v1/whoami", token=t["token"]).status_code == 200  # now cached
    r = daemon.delete(f"/api/v1/tokens/{t['id']}")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["revoked"] is True and RFC3339.match(body["revoked_at"]), body

    r = daemon.get("/api/v1/whoami", token=t["token"])
    assert_native_error(r, 401, "unauthenticated", contains="revoked")
    assert r.headers.get("WWW-Authenticate", "").startswith("Bearer")
    listed = daemon.get(f"/api/v1/tokens?project={project}").json()["tokens"]
    assert [x["revoked"] for x in listed] == [True]

    # Revoking again keeps the first revocation time.
    again = daemon.delete(f"/api/v1/tokens/{t['id']}")
    assert again.status_code == 200 and again.json()["revoked_at"] == body["revoked_at"]


def test_project_token_can_revoke_itself(daemon, project):
    name, token = project
    me = daemon.get("/api/v1/whoami", token=token).json()["token_id"]
    assert daemon.delete(f"/api/v1/tokens/{me}", token=token).status_code == 200
    assert_native_error(daemon.get("/api/v1/whoami", token=token), 401, "unauthenticated")


def test_revoke_unknown_token(daemon):
    assert_native_error(daemon.delete("/api/v1/tokens/tk_ffffffffffff"), 404, "not_found")


def test_last_admin_token_cannot_be_revoked(fresh_daemon):
    d = fresh_daemon  # its own daemon: this test revokes the bootstrap admin token
    first = d.get("/api/v1/whoami").json()["token_id"]
    assert_native_error(d.delete(f"/api/v1/tokens/{first}"), 409, "failed_precondition",
                        contains="last admin token")
    assert d.get("/api/v1/whoami").status_code == 200

    second = create_token(d, admin=True)
    assert d.delete(f"/api/v1/tokens/{first}").status_code == 200
    assert_native_error(d.get("/api/v1/whoami"), 401, "unauthenticated")
    # Now the second is the last one, and it cannot revoke itself either.
    assert_native_error(d.delete(f"/api/v1/tokens/{second['id']}", token=second["token"]), 409,
                        "failed_precondition", contains="last admin token")
    assert d.get("/api/v1/whoami", token=second["token"]).json()["admin"] is True
    d.admin_token = second["token"]


def test_revoked_token_stays_revoked_under_concurrent_use(daemon_factory):
    """Revocation racing with requests that use the token.

    The token cache must never keep a token that was revoked: once DELETE /tokens/{id} has
    answered, the token is refused. Requests that authenticated concurrently (read the token
    from the store before the revocation, and cached it after the cache was cleared) are the
    danger. This is a stress test: it cannot fail on a correct berth, and on a racy one it
    fails in most runs within its time budget.
    """
    d = daemon_factory(extra_args=["--threads", "8"])
    s = requests.Session()
    s.headers["Authorization"] = "Bearer " + d.admin_token
    current = {"token": None}
    stop = threading.Event()

    def use_current_token():
        with requests.Session() as mine:
            while not stop.is_set():
                token = current["token"]
                if token:
                    mine.get(d.url + "/api/v1/whoami", timeout=10,
                             headers={"Authorization": "Bearer " + token})
                else:
                    time.sleep(0.0005)

    users = [threading.Thread(target=use_current_token) for _ in range(4)]
    for t in users:
        t.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            tok = s.post(d.url + "/api/v1/tokens", json={}, timeout=10).json()
            current["token"] = tok["token"]
            r = s.delete(d.url + f"/api/v1/tokens/{tok['id']}", timeout=10)
            assert r.status_code == 200, r.text
            current["token"] = None
            after = s.get(d.url + "/api/v1/whoami", timeout=10,
                          headers={"Authorization": "Bearer " + tok["token"]})
            assert after.status_code == 401, (
                f"token {tok['id']} was revoked (DELETE answered 200) but still authenticates")
    finally:
        stop.set()
        for t in users:
            t.join()


# --- services: the happy path ------------------------------------------------------------------


def test_service_lifecycle(daemon):
    name = unique("svc")
    r = daemon.post("/api/v1/services", json={"name": name})
    assert r.status_code == 201, r.text
    svc = r.json()
    assert svc["name"] == name and svc["project"] == "default"
    assert svc["path"] == f"/default-{name}"
    assert svc["url"] == daemon.url + f"/default-{name}"
    assert svc["revision"] == 0 and svc["definition"] is None
    assert RFC3339.match(svc["created_at"]) and RFC3339.match(svc["updated_at"])
    assert r.headers["Location"] == f"/api/v1/services/{name}"

    assert daemon.get(f"/api/v1/services/{name}").json() == svc
    listed = daemon.get("/api/v1/services").json()
    assert listed["project"] == "default"
    assert svc in listed["services"]
    assert daemon.get(f"/api/v1/services/{name}/revisions").json() == {"revisions": []}

    push_bundle(daemon, name, "latest", bundle=inert_bundle())
    r = daemon.put(f"/api/v1/services/{name}", json=GOOD_DEF)
    assert r.status_code == 200, r.text
    v1 = r.json()
    assert v1["revision"] == 1
    d = v1["definition"]
    # Given fields are kept; the rest is filled with the documented defaults.
    assert {k: d[k] for k in GOOD_DEF} == GOOD_DEF
    assert d["replicas"] == 1
    assert d["health-check"] == {"type": "http", "rel_path": "/", "status_codes": "200-499",
                                 "interval": 30, "timeout": 5}
    assert d["base-path"] == "preserve" and d["auth"] == "token"
    assert d["scope"] == ["interactive", "jobs"]
    assert d["mounts"] == [] and d["command"] == [] and d["entrypoint"] == []

    second = dict(GOOD_DEF, **{"memory-limit": 300, "replicas": 2,
                               "mounts": [{"source": "data", "target": "/data"}]})
    v2 = daemon.put(f"/api/v1/services/{name}", json=second).json()
    assert v2["revision"] == 2 and v2["definition"]["memory-limit"] == 300
    assert daemon.get(f"/api/v1/services/{name}").json() == v2

    revs = daemon.get(f"/api/v1/services/{name}/revisions").json()["revisions"]
    assert [r["revision"] for r in revs] == [1, 2]
    assert revs[0]["definition"] == v1["definition"]
    assert revs[1]["definition"] == v2["definition"]
    assert all(RFC3339.match(r["created_at"]) for r in revs)

    r = daemon.delete(f"/api/v1/services/{name}")
    assert r.status_code == 200, r.text
    deleted = r.json()["deleted"]
    assert deleted["desired"] == 0 and deleted["running"] == 0, "it runs nothing once deleted"
    live = ("desired", "running")
    assert {k: v for k, v in deleted.items() if k not in live} == \
        {k: v for k, v in v2.items() if k not in live}
    assert_native_error(daemon.get(f"/api/v1/services/{name}"), 404, "not_found", contains=name)
    assert_native_error(daemon.get(f"/api/v1/services/{name}/revisions"), 404, "not_found")
    assert name not in [s["name"] for s in daemon.get("/api/v1/services").json()["services"]]
    # The name is free again, starting from revision 0.
    assert daemon.post("/api/v1/services", json={"name": name}).json()["revision"] == 0


def test_definition_with_command_and_no_tag(daemon):
    name = create_service(daemon)
    # replicas 0: berth would otherwise start the command.
    body = {"command": ["python3", "-m", "http.server"], "inherited-environment": ["HOME"],
            "environment": [{"name": "N", "value": 5}, {"name": "B", "value": True}],
            "health-check": {"type": "tcp", "status_codes": "200-299,301", "interval": 10},
            "replicas": 0}
    r = daemon.put(f"/api/v1/services/{name}", json=body)
    assert r.status_code == 200, r.text
    d = r.json()["definition"]
    assert d["container-tag"] is None and d["command"] == body["command"]
    # Numbers and booleans in env values are kept as their JSON text.
    assert d["environment"] == [{"name": "N", "value": "5"}, {"name": "B", "value": "true"}]


def test_fractional_env_value_keeps_its_text(daemon):
    # Numbers in env values are documented to keep their text; 1.5 must not become "1.5E0".
    name = create_service(daemon)
    body = dict(GOOD_DEF, environment=[{"name": "RATIO", "value": 1.5},
                                       {"name": "SMALL", "value": 0.1}])
    r = daemon.put(f"/api/v1/services/{name}", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["definition"]["environment"] == [{"name": "RATIO", "value": "1.5"},
                                                     {"name": "SMALL", "value": "0.1"}]


def test_memory_reservation_beyond_the_machine_is_refused(daemon, defined_service):
    # The parser allows up to 1 TiB; admission refuses what the machine cannot hold.
    before = snapshot(daemon, defined_service)
    body = dict(GOOD_DEF, **{"memory-reservation": 1 << 20, "memory-limit": 1 << 20})
    r = daemon.put(f"/api/v1/services/{defined_service}", json=body)
    assert_native_error(r, 409, "failed_precondition", contains=("memory-reservation", "MB"))
    assert snapshot(daemon, defined_service) == before


def test_location_header_names_the_created_service(daemon):
    # An admin creating a service in another project must get a Location that leads to it.
    project = create_project(daemon)
    name = unique("loc")
    r = daemon.post(f"/api/v1/services?project={project}", json={"name": name})
    assert r.status_code == 201
    followed = daemon.get(r.headers["Location"])
    assert followed.status_code == 200, (r.headers["Location"], followed.text)
    assert followed.json()["project"] == project


def test_list_services_is_sorted(daemon):
    project = create_project(daemon)
    for n in ("zeta", "alpha", "mid"):
        create_service(daemon, n, project=project)
    listed = daemon.get(f"/api/v1/services?project={project}").json()
    assert listed["project"] == project
    assert [s["name"] for s in listed["services"]] == ["alpha", "mid", "zeta"]


# --- services: names ---------------------------------------------------------------------------


@pytest.mark.parametrize("name,rule", [
    ("Bad", "must begin with a lowercase letter"),
    ("1svc", "must begin with a lowercase letter"),
    ("-svc", "must begin with a lowercase letter"),
    ("svc-", "must end with a lowercase letter or digit"),
    ("a_b", "only lowercase letters (a-z), digits (0-9) and '-'"),
    ("aB", "only lowercase letters (a-z), digits (0-9) and '-'"),
    ("", "service name is empty"),
    ("a" * 40, "at most 32"),
    ("café", "only lowercase letters (a-z), digits (0-9) and '-'"),
    ("my svc", "only lowercase letters (a-z), digits (0-9) and '-'"),
    ("a/b", "only lowercase letters (a-z), digits (0-9) and '-'"),
])
def test_bad_service_names(daemon, name, rule):
    before = daemon.get("/api/v1/services").json()["services"]
    r = daemon.post("/api/v1/services", json={"name": name})
    assert_native_error(r, 400, "invalid_argument", contains=rule)
    assert daemon.get("/api/v1/services").json()["services"] == before


def test_non_ascii_name_is_quoted_readably(daemon):
    message = assert_native_error(daemon.post("/api/v1/services", json={"name": "café"}), 400)
    # The bytes are escaped, so the message stays printable ASCII.
    assert message.isascii() and "caf" in message, message


def test_service_name_length_counts_the_project(daemon):
    # "default-" is 8 characters, so 24 is the longest name in the default project.
    ok = "n" + "a" * 23
    assert create_service(daemon, ok) == ok
    message = assert_native_error(daemon.post("/api/v1/services", json={"name": ok + "b"}),
                                  400, "invalid_argument", contains="at most 32")
    assert "33" in message and "default-" in message

    # A 20-character project leaves 11 characters for the name.
    project = unique("longproj")
    project = project + "q" * (20 - len(project))
    create_project(daemon, project)
    assert create_service(daemon, "b" * 11, project=project) == "b" * 11
    r = daemon.post(f"/api/v1/services?project={project}", json={"name": "c" * 12})
    assert_native_error(r, 400, "invalid_argument", contains=("at most 32", project))


@pytest.mark.parametrize("body,message", [
    ({}, "name: is required"),
    ({"name": 3}, "name: must be a string"),
    ({"name": None}, "name: must be a string"),
    ({"name": "ok", "definition": {}}, "definition: unknown field"),
    ({"name": "ok", "project": 1}, "project: must be a string"),
    ("name", "JSON object"),
])
def test_create_service_body_errors(daemon, body, message):
    assert_native_error(daemon.post("/api/v1/services", json=body), 400, "invalid_argument",
                        contains=message)


def test_duplicate_service_is_409(daemon):
    name = create_service(daemon)
    r = daemon.post("/api/v1/services", json={"name": name})
    assert_native_error(r, 409, "already_exists", contains=name)
    # The same name in another project is a different service.
    project = create_project(daemon)
    assert create_service(daemon, name, project=project) == name


@pytest.mark.parametrize("method,suffix", [
    ("GET", ""), ("PUT", ""), ("DELETE", ""), ("GET", "/revisions"),
])
def test_unknown_service_is_404(daemon, method, suffix):
    r = daemon.request(method, f"/api/v1/services/nosuchsvc{suffix}",
                       json=GOOD_DEF if method == "PUT" else None)
    assert_native_error(r, 404, "not_found", contains="nosuchsvc")


# --- services: every definition field is validated ---------------------------------------------

DROP = object()

BAD_DEFINITIONS = [
    # (changes to GOOD_DEF, start of the message: the field it names)
    ({"container-tag": 5}, "container-tag: must be a string"),
    ({"container-tag": ""}, "container-tag:"),
    ({"container-tag": "-bad"}, "container-tag: '-bad' is not a valid tag"),
    ({"container-tag": "has space"}, "container-tag:"),
    ({"container-tag": "t" * 129}, "container-tag:"),
    ({"container-tag": DROP}, "container-tag: required unless command or entrypoint"),
    ({"memory-reservation": "100"}, "memory-reservation: must be an integer"),
    ({"memory-reservation": 0}, "memory-reservation: must be between 1 and"),
    ({"memory-reservation": -5}, "memory-reservation: must be between"),
    ({"memory-reservation": 1.5}, "memory-reservation: must be an integer"),
    ({"memory-reservation": True}, "memory-reservation: must be an integer"),
    ({"memory-reservation": 1, "memory-limit": (1 << 20) + 1}, "memory-limit: must be between"),
    ({"memory-reservation": 2 ** 64 - 1}, "memory-reservation: must be between"),
    ({"memory-limit": 5}, "memory-limit: must be >= memory-reservation (5 < 10)"),
    ({"memory-limit": [150]}, "memory-limit: must be an integer"),
    ({"container-port": 0}, "container-port: must be between 1 and 65535"),
    ({"container-port": 65536}, "container-port: must be between 1 and 65535"),
    ({"container-port": "80"}, "container-port: must be an integer"),
    ({"environment": {"A": "b"}}, "environment: must be a list"),
    ({"environment": "A=b"}, "environment: must be a list"),
    ({"environment": ["A=b"]}, "environment[0]: must be an object"),
    ({"environment": [{"name": "1A", "value": "x"}]}, "environment[0].name: '1A' is not a valid"),
    ({"environment": [{"name": "A-B", "value": "x"}]}, "environment[0].name:"),
    ({"environment": [{"name": "", "value": "x"}]}, "environment[0].name: must not be empty"),
    ({"environment": [{"name": 1, "value": "x"}]}, "environment[0].name: must be a string"),
    ({"environment": [{"name": "A"}]}, "environment[0].value: is required"),
    ({"environment": [{"value": "x"}]}, "environment[0].name: is required"),
    ({"environment": [{"name": "A", "value": [1]}]}, "environment[0].value: must be a string"),
    ({"environment": [{"name": "A", "value": None}]}, "environment[0].value: must be a string"),
    ({"environment": [{"name": "A", "value": "x", "secret": True}]},
     "environment[0]: unknown key 'secret'"),
    ({"environment": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]},
     "environment[1].name: 'A' is set twice"),
    ({"environment": [{"name": "A", "value": "x" * (64 * 1024 + 1)}]}, "environment[0].value:"),
    ({"inherited-environment": "HOME"}, "inherited-environment: must be a list"),
    ({"inherited-environment": [1]}, "inherited-environment[0]: must be a string"),
    ({"inherited-environment": ["9LIVES"]}, "inherited-environment[0]: '9LIVES' is not a valid"),
    ({"inherited-environment": [""]}, "inherited-environment[0]: must not be empty"),
    ({"command": "python3 app.py"}, "command: must be a list of strings"),
    ({"command": ["python3", 1]}, "command[1]: must be a string"),
    ({"command": ["", "x"]}, "command[0]: the program name must not be empty"),
    ({"command": ["x"] * 1001}, "command: has 1001 items"),
    ({"entrypoint": {"cmd": "x"}}, "entrypoint: must be a list of strings"),
    ({"entrypoint": [""]}, "entrypoint[0]: the program name must not be empty"),
    ({"replicas": -1}, "replicas: must be between 0 and 100"),
    ({"replicas": 101}, "replicas: must be between 0 and 100"),
    ({"replicas": "1"}, "replicas: must be an integer"),
    ({"health-check": "/health"}, "health-check: must be an object"),
    ({"health-check": {"rel_path": "health"}}, "health-check.rel_path: must start with '/'"),
    ({"health-check": {"rel_path": ""}}, "health-check.rel_path: must not be empty"),
    ({"health-check": {"status_codes": 200}}, "health-check.status_codes: must be a string"),
    ({"health-check": {"status_codes": "abc"}}, "health-check.status_codes:"),
    ({"health-check": {"status_codes": "600"}}, "health-check.status_codes:"),
    ({"health-check": {"status_codes": "99"}}, "health-check.status_codes:"),
    ({"health-check": {"status_codes": "299-200"}}, "health-check.status_codes:"),
    ({"health-check": {"status_codes": "200,"}}, "health-check.status_codes:"),
    ({"health-check": {"interval": 0}}, "health-check.interval: must be between 1 and 86400"),
    ({"health-check": {"interval": 86401}}, "health-check.interval: must be between"),
    ({"health-check": {"interval": "30"}}, "health-check.interval: must be an integer"),
    ({"health-check": {"timeout": 0}}, "health-check.timeout: must be between 1 and 3600"),
    ({"health-check": {"type": "udp"}}, "health-check.type: must be one of http, tcp"),
    ({"health-check": {"path": "/"}}, "health-check.path: unknown key"),
    ({"base-path": "keep"}, "base-path: must be one of preserve, strip"),
    ({"base-path": 1}, "base-path: must be a string"),
    ({"auth": "none"}, "auth: must be one of token, public"),
    ({"auth": True}, "auth: must be a string"),
    ({"scope": []}, "scope: must name at least one of interactive, jobs"),
    ({"scope": ["batch"]}, "scope[0]: must be 'interactive' or 'jobs'"),
    ({"scope": "jobs"}, "scope: must be a list of strings"),
    ({"scope": [1]}, "scope[0]: must be a string"),
    ({"mounts": {"source": "data"}}, "mounts: must be a list"),
    ({"mounts": ["/data"]}, "mounts[0]: must be an object"),
    ({"mounts": [{"source": "disk", "target": "/x"}]},
     "mounts[0].source: must be one of data, project"),
    ({"mounts": [{"source": "data", "target": "rel"}]}, "mounts[0].target: must be an absolute"),
    ({"mounts": [{"source": "data", "target": "/a/../etc"}]}, "mounts[0].target:"),
    ({"mounts": [{"source": "data"}]}, "mounts[0].target: is required"),
    ({"mounts": [{"target": "/x"}]}, "mounts[0].source: is required"),
    ({"mounts": [{"source": "data", "target": "/x", "ro": True}]}, "mounts[0]: unknown key 'ro'"),
    ({"mounts": [{"source": "data", "target": "/x"}, {"source": "project", "target": "/x"}]},
     "mounts[1].target: '/x' is mounted twice"),
    ({"colour": "blue"}, "colour: unknown field"),
    ({"container_port": 80}, "container_port: unknown field"),
]


@pytest.fixture(scope="module")
def defined_service(daemon):
    """A service at revision 1, which bad PUTs must leave alone."""
    name = create_service(daemon)
    r = daemon.put(f"/api/v1/services/{name}", json=GOOD_DEF)
    assert r.status_code == 200, r.text
    return name


def snapshot(d, name):
    return (d.get(f"/api/v1/services/{name}").json(),
            d.get(f"/api/v1/services/{name}/revisions").json())


@pytest.mark.parametrize("changes,message", BAD_DEFINITIONS,
                         ids=[m.split(":")[0] + "-" + str(i)
                              for i, (c, m) in enumerate(BAD_DEFINITIONS)])
def test_bad_definition_is_refused_and_changes_nothing(daemon, defined_service, changes, message):
    body = dict(GOOD_DEF)
    for k, v in changes.items():
        if v is DROP:
            body.pop(k)
        else:
            body[k] = v
    before = snapshot(daemon, defined_service)
    r = daemon.put(f"/api/v1/services/{defined_service}", json=body)
    got = assert_native_error(r, 400, "invalid_argument")
    assert got.startswith(message), f"expected a message starting {message!r}, got {got!r}"
    assert snapshot(daemon, defined_service) == before


@pytest.mark.parametrize("body,message", [
    ([], "definition must be a JSON object"),
    ("latest", "definition must be a JSON object"),
    ({}, "container-tag: required"),
    ({"memory-limit": 10}, "container-tag: required"),
])
def test_definition_that_is_not_an_object_or_empty(daemon, defined_service, body, message):
    before = snapshot(daemon, defined_service)
    got = assert_native_error(daemon.put(f"/api/v1/services/{defined_service}", json=body), 400)
    assert got.startswith(message), got
    assert snapshot(daemon, defined_service) == before


def test_definition_naming_a_tag_never_pushed_is_refused_with_the_pushed_tags(daemon):
    name = create_service(daemon)  # pushes 'latest'
    push_bundle(daemon, name, "v2", bundle=inert_bundle())
    r = daemon.put(f"/api/v1/services/{name}", json=GOOD_DEF)
    assert r.status_code == 200, r.text
    before = snapshot(daemon, name)
    got = assert_native_error(
        daemon.put(f"/api/v1/services/{name}", json=dict(GOOD_DEF, **{"container-tag": "v3"})),
        400, "invalid_argument")
    assert got.startswith("container-tag: no bundle tagged 'v3' was pushed to "
                          f"'{name}'"), got
    assert "pushed: " in got and "latest" in got and "v2" in got, got
    assert f"berth push {name} DIR --tag v3" in got, got
    assert snapshot(daemon, name) == before

    # With nothing pushed at all, the message says so.
    bare = unique("s")
    assert daemon.post("/api/v1/services", json={"name": bare}).status_code == 201
    got = assert_native_error(daemon.put(f"/api/v1/services/{bare}", json=GOOD_DEF), 400)
    assert "none was pushed yet" in got, got
    assert daemon.get(f"/api/v1/services/{bare}").json()["revision"] == 0


def test_endpoint_names_a_url_only_for_a_routed_service(daemon):
    name = create_service(daemon)
    assert daemon.put(f"/api/v1/services/{name}", json=GOOD_DEF).status_code == 200
    ep = daemon.get(f"/api/v1/services/{name}/endpoint").json()
    assert ep["external_urls"] == [f"{daemon.url}/default-{name}/"], ep
    assert ep["base_paths"] == [f"/default-{name}"], ep
    internal = dict(GOOD_DEF, expose="internal")
    assert daemon.put(f"/api/v1/services/{name}", json=internal).status_code == 200
    ep = daemon.get(f"/api/v1/services/{name}/endpoint").json()
    assert ep["external_urls"] == [] and ep["base_paths"] == [], ep


def test_null_fields_mean_default(daemon):
    name = create_service(daemon)
    body = dict(GOOD_DEF, replicas=None, auth=None)
    d = daemon.put(f"/api/v1/services/{name}", json=body).json()["definition"]
    assert d["replicas"] == 1 and d["auth"] == "token"


# --- malformed requests ------------------------------------------------------------------------


@pytest.mark.parametrize("method,path", [
    ("POST", "/api/v1/projects"),
    ("POST", "/api/v1/services"),
    ("POST", "/api/v1/tokens"),
    ("PUT", "/api/v1/services/{svc}"),
])
def test_malformed_json_is_400(daemon, defined_service, method, path):
    before = snapshot(daemon, defined_service)
    r = daemon.request(method, path.format(svc=defined_service), data=b'{"name": "x",',
                       headers={"Content-Type": "application/json"})
    assert_native_error(r, 400, "invalid_argument", contains="malformed JSON")
    assert snapshot(daemon, defined_service) == before


@pytest.mark.parametrize("method,path", [
    ("POST", "/api/v1/projects"),
    ("POST", "/api/v1/services"),
    ("PUT", "/api/v1/services/{svc}"),
])
def test_empty_body_is_400(daemon, defined_service, method, path):
    r = daemon.request(method, path.format(svc=defined_service), data=b"")
    assert_native_error(r, 400, "invalid_argument", contains="empty")


def test_trailing_garbage_after_json_is_400(daemon):
    r = daemon.post("/api/v1/services", data=b'{"name": "okname"} {"name": "other"}')
    assert_native_error(r, 400, "invalid_argument", contains="malformed JSON")
    assert_native_error(daemon.get("/api/v1/services/okname"), 404)


def padded(obj, size):
    """`obj` as JSON padded with trailing spaces to exactly `size` bytes (still valid JSON)."""
    text = json.dumps(obj).encode()
    assert len(text) <= size
    return text + b" " * (size - len(text))


def test_body_of_exactly_one_mib_is_accepted(daemon, defined_service):
    r = daemon.put(f"/api/v1/services/{defined_service}", data=padded(GOOD_DEF, MIB))
    assert r.status_code == 200, r.text[:300]


def test_oversized_body_is_413(daemon, defined_service):
    before = snapshot(daemon, defined_service)
    r = daemon.put(f"/api/v1/services/{defined_service}", data=padded(GOOD_DEF, MIB + 1))
    assert_native_error(r, 413, "payload_too_large", contains="1048576")
    assert snapshot(daemon, defined_service) == before


def test_artifact_upload_over_one_mib_with_content_length(daemon, tmp_path):
    # Artifact uploads have their own limit (1 GiB); the 1 MiB API limit must not apply to
    # them, whether the client sends Content-Length (curl, requests) or chunks.
    name = create_service(daemon)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        data = os.urandom(2 * MIB)  # incompressible, so the archive stays over 1 MiB
        info = tarfile.TarInfo("blob.bin")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    bundle = buf.getvalue()
    assert len(bundle) > MIB
    chunked = daemon.put(f"/api/v1/services/{name}/artifacts/v1", data=iter([bundle]))
    assert chunked.status_code == 201, chunked.text
    r = daemon.put(f"/api/v1/services/{name}/artifacts/v2", data=bundle)
    assert r.status_code == 201, r.text
    assert r.json()["size"] == len(bundle)
    assert daemon.delete(f"/api/v1/services/{name}").status_code == 200


def test_oversized_headers_are_431(daemon):
    r = daemon.get("/api/v1/whoami", headers={"X-Padding": "p" * 20000})
    assert_native_error(r, 431, "headers_too_large", contains="16384")


def test_oversized_chunked_body_is_413(daemon):
    # No Content-Length: the limit has to trip while the body streams in.
    chunks = (b" " * 65536 for _ in range(20))
    r = daemon.post("/api/v1/services", data=chunks)
    assert_native_error(r, 413, "payload_too_large")


@pytest.mark.parametrize("method,path,allowed", [
    ("PATCH", "/api/v1/services", {"GET", "POST"}),
    ("DELETE", "/api/v1/services", {"GET", "POST"}),
    ("POST", "/api/v1/services/x", {"GET", "PUT", "DELETE"}),
    ("PATCH", "/api/v1/services/x", {"GET", "PUT", "DELETE"}),
    ("PUT", "/api/v1/projects", {"GET", "POST"}),
    ("DELETE", "/api/v1/projects/default", {"GET"}),
    ("PUT", "/api/v1/tokens/tk_x", {"GET", "DELETE"}),
    ("POST", "/api/v1/health", {"GET"}),
    ("POST", "/api/v1/services/x/revisions", {"GET"}),
])
def test_wrong_method_is_405_with_allow(daemon, method, path, allowed):
    r = daemon.request(method, path, data=b"{}")
    assert_native_error(r, 405, "method_not_allowed", contains=method)
    assert set(r.headers["Allow"].split(", ")) == allowed


@pytest.mark.parametrize("path", [
    "/api/v1", "/api/v1/nope", "/api/v2/services", "/api/v1/services/x/y",
    "/api/v1/services/x/revisions/1", "/services",
])
def test_unknown_path_is_404_json(daemon, path):
    assert_native_error(daemon.get(path), 404, "not_found", contains="no such endpoint")


def test_unknown_path_outside_api_gives_a_hint(daemon):
    assert_native_error(daemon.get("/services"), 404, contains="/api/v1")


def raw_request(d, request_bytes):
    """Sends bytes as they are (requests would re-encode a bad path) and returns the answer."""
    u = urlparse(d.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    try:
        conn.sock = None
        conn.connect()
        conn.sock.sendall(request_bytes)
        resp = http.client.HTTPResponse(conn.sock)
        resp.begin()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def test_bad_percent_encoding_is_400(daemon):
    status, headers, body = raw_request(
        daemon, b"GET /api/v1/services/%ZZ HTTP/1.1\r\nHost: x\r\n"
                b"Authorization: Bearer " + daemon.admin_token.encode() + b"\r\n\r\n")
    assert status == 400
    err = json.loads(body)["error"]
    assert err["code"] == "bad_request" and "percent-encoding" in err["message"]


def test_malformed_http_is_400_json(daemon):
    status, headers, body = raw_request(daemon, b"GET / HTTP/1.1\r\nBad Header\r\n\r\n")
    assert status == 400
    assert set(json.loads(body)) == {"error"}


def test_percent_encoded_name_is_decoded(daemon):
    name = create_service(daemon)
    encoded = "".join(f"%{ord(c):02x}" for c in name)
    assert daemon.get(f"/api/v1/services/{encoded}").json()["name"] == name


# --- authentication and project isolation ------------------------------------------------------


@pytest.mark.parametrize("headers,message", [
    ({}, "no token given"),
    ({"Authorization": "Bearer"}, "no token given"),
    ({"Authorization": "Bearer   "}, "no token given"),
    ({"Authorization": "Basic dXNlcjpwYXNz"}, "no token given"),
    ({"Authorization": "Bearer berth_" + "0" * 64}, "not valid"),
    ({"Authorization": "Bearer nonsense"}, "not valid"),
    ({"X-Auth-Token": "whatever"}, "no token given"),
])
@pytest.mark.parametrize("method,path", [
    ("GET", "/api/v1/whoami"), ("GET", "/api/v1/services"), ("POST", "/api/v1/projects"),
    ("GET", "/api/v1/tokens"),
])
def test_missing_or_unknown_token_is_401(daemon, headers, message, method, path):
    r = daemon.request(method, path, token="", headers=headers, json={"name": "zz"})
    assert_native_error(r, 401, "unauthenticated", contains=message)
    assert r.headers["WWW-Authenticate"] == 'Bearer realm="berth"'


def test_bearer_scheme_is_case_insensitive(daemon):
    r = daemon.get("/api/v1/whoami", token="", headers={"Authorization": "bearer " +
                                                        daemon.admin_token})
    assert r.status_code == 200


def test_revoked_token_is_401_everywhere(daemon, project):
    name, token = project
    svc = create_service(daemon, token=token)
    me = daemon.get("/api/v1/whoami", token=token).json()["token_id"]
    daemon.delete(f"/api/v1/tokens/{me}")
    for method, path in [("GET", "/api/v1/services"), ("GET", f"/api/v1/services/{svc}"),
                         ("PUT", f"/api/v1/services/{svc}"), ("DELETE", f"/api/v1/services/{svc}"),
                         ("POST", "/api/v1/tokens")]:
        r = daemon.request(method, path, token=token, json=GOOD_DEF)
        assert_native_error(r, 401, "unauthenticated", contains="revoked")
    # None of those got through.
    assert daemon.get(f"/api/v1/services/{svc}?project={name}").json()["revision"] == 0


def test_project_token_cannot_see_other_projects_services(daemon):
    a, token_a = project_with_token(daemon)
    b, token_b = project_with_token(daemon)
    svc_b = create_service(daemon, token=token_b)
    svc_a = create_service(daemon, token=token_a)

    listed = daemon.get("/api/v1/services", token=token_a).json()
    assert listed["project"] == a
    assert [s["name"] for s in listed["services"]] == [svc_a]

    # By name, B's service simply does not exist for A: 404, not 403.
    for method, suffix in [("GET", ""), ("PUT", ""), ("DELETE", ""), ("GET", "/revisions")]:
        r = daemon.request(method, f"/api/v1/services/{svc_b}{suffix}", token=token_a,
                           json=GOOD_DEF)
        assert_native_error(r, 404, "not_found")

    # Naming B explicitly is refused.
    for method, path in [("GET", "/api/v1/services"), ("GET", f"/api/v1/services/{svc_b}"),
                         ("DELETE", f"/api/v1/services/{svc_b}"), ("POST", "/api/v1/services")]:
        r = daemon.request(method, f"{path}?project={b}", token=token_a, json={"name": "zz"})
        assert_native_error(r, 403, "permission_denied", contains=(a, b))
    r = daemon.post("/api/v1/services", token=token_a, json={"name": "zz", "project": b})
    assert_native_error(r, 403, "permission_denied")

    # ?project= naming one's own project is fine.
    assert daemon.get(f"/api/v1/services?project={a}", token=token_a).status_code == 200
    # B's service is untouched.
    assert daemon.get(f"/api/v1/services/{svc_b}", token=token_b).json()["revision"] == 0
    assert "zz" not in [s["name"] for s in
                        daemon.get("/api/v1/services", token=token_b).json()["services"]]


def test_admin_acts_on_default_unless_project_given(daemon):
    project = create_project(daemon)
    in_default = create_service(daemon)
    in_project = create_service(daemon, project=project)
    via_body = unique("b")
    r = daemon.post("/api/v1/services", json={"name": via_body, "project": project})
    assert r.status_code == 201 and r.json()["project"] == project

    assert daemon.get(f"/api/v1/services/{in_default}").json()["project"] == "default"
    assert_native_error(daemon.get(f"/api/v1/services/{in_project}"), 404)
    got = daemon.get(f"/api/v1/services/{in_project}?project={project}").json()
    assert got["project"] == project and got["path"] == f"/{project}-{in_project}"

    names = [s["name"] for s in daemon.get(f"/api/v1/services?project={project}").json()
             ["services"]]
    assert sorted(names) == sorted([in_project, via_body])
    assert in_project not in [s["name"] for s in daemon.get("/api/v1/services").json()
                              ["services"]]

    r = daemon.put(f"/api/v1/services/{in_project}?project={project}", json=GOOD_DEF)
    assert r.status_code == 200 and r.json()["revision"] == 1
    assert daemon.delete(f"/api/v1/services/{in_project}?project={project}").status_code == 200


def test_admin_on_unknown_project(daemon):
    assert_native_error(daemon.get("/api/v1/services?project=nosuchproject"), 404, "not_found",
                        contains="nosuchproject")
    r = daemon.post("/api/v1/services?project=nosuchproject", json={"name": "x"})
    assert_native_error(r, 404, "not_found", contains="nosuchproject")


def test_public_url_is_used_for_links(daemon_factory):
    d = daemon_factory(extra_args=["--public-url", "https://berth.example.org/"])
    r = d.post("/api/v1/services", json={"name": "web"})
    assert r.json()["url"] == "https://berth.example.org/default-web"


def test_keep_alive_connection_serves_many_requests(daemon):
    with requests.Session() as s:
        s.headers["Authorization"] = "Bearer " + daemon.admin_token
        for _ in range(50):
            assert s.get(daemon.url + "/api/v1/whoami", timeout=10).status_code == 200
        # An error answer does not spoil the connection either.
        assert s.get(daemon.url + "/api/v1/nope", timeout=10).status_code == 404
        assert s.get(daemon.url + "/api/v1/whoami", timeout=10).status_code == 200
