"""The servicectl dialect under /servicectl-1, driven the way a CloudFlow user drives it.

`ServicesClient` below mirrors clfpy.ServicesClient (the CloudFlow Python client) as described
in the client study: the same URL joining with os.path.join, the X-Auth-Token header, the same
status codes turned into the same exceptions, and the same JSON keys read by its print_*
helpers. If berth answers in a shape that client cannot digest, these tests fail the way a
CloudFlow user's script would (KeyError, wrong exception). Raw `requests` covers the codes the
client passes through without looking.
"""
import json
import os
import re

import pytest
import requests

from conftest import (http_server_bundle, inert_bundle, pid_alive, project_with_token,
                      push_bundle, unique, wait_until)

MIB = 1 << 20
SERVICECTL_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")


# --- a stand-in for clfpy.ServicesClient -------------------------------------------------------


class AuthenticationFailedException(Exception):
    pass


class MethodNotAllowedException(Exception):
    pass


class ServiceNotFoundException(Exception):
    pass


class BadRequestException(Exception):
    pass


class ServicesClient:
    """Behaves like clfpy's client: no session, no timeout handling, no raise_for_status.

    Only the codes clfpy checks become exceptions; every other answer, 2xx or not, is handed
    back as r.json(). 403 never reads the body; 400/404/405 read r.json()["Error"].
    """

    def __init__(self, url):
        self.url = url

    @staticmethod
    def _auth(token):
        return {"X-Auth-Token": token}

    def _service_url(self, name):
        return os.path.join(self.url, "services/{}".format(name))

    @staticmethod
    def _check(r, *codes):
        if r.status_code == 403:
            raise AuthenticationFailedException("Token validation failed")
        if 405 in codes and r.status_code == 405:
            raise MethodNotAllowedException(r.json()["Error"])
        if 400 in codes and r.status_code == 400:
            raise BadRequestException(r.json()["Error"])
        if 404 in codes and r.status_code == 404:
            raise ServiceNotFoundException(r.json()["Error"])
        return r.json()

    def list_services(self, token):
        r = requests.get(os.path.join(self.url, "services"), headers=self._auth(token))
        return self._check(r)

    def print_service_list(self, token):
        services = self.list_services(token)
        print("\n{} services currently available:".format(len(services)))
        for s in services:
            print(s["name"])
            for link in s["links"]:
                if link["rel"] == "deployment":
                    print("  Deployment path: {}".format(link["href"]))

    def create_new_service(self, token, name, health_check=None):
        payload = {"name": name}
        if health_check is not None:
            for key in ("rel_path", "status_codes", "interval"):
                assert key in health_check
            payload["health_check"] = health_check
        r = requests.post(os.path.join(self.url, "services"), headers=self._auth(token),
                          json=payload)
        return self._check(r, 405, 400)

    def get_service_status(self, token, name):
        r = requests.get(self._service_url(name), headers=self._auth(token))
        return self._check(r, 404)

    def print_service_status(self, token, name):
        status = self.get_service_status(token, name)["status"]
        print("\nStatus report for service {}:".format(name))
        print("Service status: {}".format(status["service_status"]))
        print("Desired count: {}".format(status["count_desired"]))
        print("Running count: {}".format(status["count_running"]))
        print("Pending count: {}".format(status["count_pending"]))
        print("\nTasks:")
        for task in status["tasks"]:
            print(task["task_name"])
            print("  Created: {}".format(task["created_at"]))
            print("  Desired status: {}".format(task["desired_status"]))
            print("  Last status: {}\n".format(task["last_status"]))
            td = task["task_definition"]
            print("  Task definition:")
            for label, key in [("Name", "name"), ("Revision", "revision"), ("Status", "status"),
                               ("Container image", "container_image"),
                               ("Container memory reservation", "container_memory_reservation"),
                               ("Container memory limit", "container_memory_limit"),
                               ("Container port", "container_port")]:
                print("    {}: {}".format(label, td[key]))
        print("\nLast events:")
        for event in status["events"]:
            print("{}: {}".format(event["created_at"], event["message"]))
        print("\nTarget health:")
        th = status["target_health"]
        print("Health-check path: {}".format(th["health_check_path"]))
        print("Health-check interval: {}".format(th["interval"]))
        print("Health-check status codes: {}".format(th["status_codes"]))
        targets = th["targets"]
        for i, t in enumerate(targets):
            line = "Target {}/{}: {}, Port: {}, Health: {}".format(
                i + 1, len(targets), t["target"], t["port"], t["health"])
            if "description" in t:
                line += ", Description: {}".format(t["description"])
            print(line)

    def get_service_logs(self, token, name, tail=20, streams=1):
        # clfpy always sends streams=1, whatever it is given.
        r = requests.get(self._service_url(name), headers=self._auth(token),
                         params={"view": "logs", "tail": tail, "streams": 1})
        return self._check(r, 404)

    def print_service_logs(self, token, name, tail=20, streams=1):
        logs = self.get_service_logs(token, name, tail, streams)["logs"]
        print("\nPrinting logs for service '{}'".format(name))
        print("Printing the last {} log events for the last {} log streams".format(tail, streams))
        for i, log in enumerate(logs):
            print("\nEvents for log stream {}/{} - {}:".format(i + 1, len(logs),
                                                               log["stream_name"]))
            for event in log["log_events"]:
                print("{}: {}".format(event["time"], event["message"]))

    def get_docker_credentials(self, token, name):
        r = requests.get(self._service_url(name), headers=self._auth(token),
                         params={"view": "docker"})
        return self._check(r, 404)

    def update_service(self, token, name, definition):
        for key in ("container-tag", "memory-reservation", "memory-limit", "container-port",
                    "environment"):
            assert key in definition
        assert type(definition["environment"]) is list
        r = requests.put(self._service_url(name), headers=self._auth(token), json=definition)
        return self._check(r, 404)

    def delete_service(self, token, name):
        r = requests.delete(self._service_url(name), headers=self._auth(token))
        return self._check(r, 404)


# --- fixtures ----------------------------------------------------------------------------------


def seed_definition(project, name, port=80):
    """The definition CloudFlow's create test and manual PUT."""
    return {
        "container-tag": "latest",
        "memory-reservation": 100,
        "memory-limit": 150,
        "container-port": port,
        "environment": [{"name": "CONTEXT_ROOT", "value": "/{}-{}".format(project, name)}],
    }


@pytest.fixture
def user(daemon):
    """A CloudFlow user: a project, its token, and a client on servicectl's base URL.

    The project's services are deleted afterwards: berth admits memory reservations against
    the machine, and the seed definition reserves 100 MB each."""
    project, token = project_with_token(daemon)
    # clfpy's tests use the base URL with a trailing slash, its CLI without; both must work.
    yield project, token, ServicesClient(daemon.url + "/servicectl-1/")
    for s in daemon.get(f"/api/v1/services?project={project}").json()["services"]:
        assert daemon.delete(f"/api/v1/services/{s['name']}?project={project}").status_code == 200


def raw(d, method, path, token=None, **kw):
    headers = dict(kw.pop("headers", {}))
    if token is not None:
        headers["X-Auth-Token"] = token
    return requests.request(method, d.url + "/servicectl-1" + path, headers=headers,
                            timeout=10, **kw)


def assert_servicectl_error(r, status, contains=()):
    """servicectl errors are exactly {"Error": "<message>"}."""
    assert r.status_code == status, f"expected {status}, got {r.status_code}: {r.text}"
    body = r.json()
    assert set(body) == {"Error"}, body
    assert isinstance(body["Error"], str) and body["Error"], body
    for fragment in ([contains] if isinstance(contains, str) else contains):
        assert fragment in body["Error"], body
    return body["Error"]


def push_inert(d, project, name, tag="latest"):
    """Pushes a bundle with nothing to run under `tag`, so that a definition may name it."""
    push_bundle(d, name, tag, project=project, bundle=inert_bundle())


def native_service(d, project, name):
    return d.get(f"/api/v1/services/{name}?project={project}").json()


# --- the lifecycle as a CloudFlow user runs it -------------------------------------------------


def test_create_without_health_check(daemon, user):
    project, token, client = user
    name = unique("svc")
    created = client.create_new_service(token, name)
    assert created["name"] == name
    links = {link["rel"]: link["href"] for link in created["links"]}
    assert set(links) == {"self", "deployment"}
    assert links["self"] == "/services/" + name
    assert links["deployment"] == daemon.url + "/{}-{}".format(project, name)
    assert links["deployment"].endswith("/{}-{}".format(project, name))
    # The service is in the registry, in the token's project, with nothing defined yet.
    assert native_service(daemon, project, name)["revision"] == 0


def test_create_answers_201(daemon, user):
    project, token, client = user
    r = raw(daemon, "POST", "/services", token, json={"name": unique("svc")})
    assert r.status_code == 201, r.text


def test_status_before_any_definition_is_unknown(daemon, user):
    project, token, client = user
    name = unique("svc")
    client.create_new_service(token, name)
    body = client.get_service_status(token, name)
    status = body["status"]
    for key in ("service_status", "count_desired", "count_running", "count_pending"):
        assert status[key] == "unknown", status
    assert status["tasks"] == []
    assert [e["message"] for e in status["events"]] == [
        "(service {}-{}) created".format(project, name)]
    assert SERVICECTL_TIME.match(status["events"][0]["created_at"]), status["events"]
    th = status["target_health"]
    # CloudFlow's default health check: GET on the deployment path, 200-499, every 30 s.
    assert th == {"health_check_path": daemon.url + "/{}-{}/".format(project, name),
                  "interval": 30, "status_codes": "200-499", "targets": []}


def test_status_with_view_status_is_the_same(daemon, user):
    project, token, client = user
    name = unique("svc")
    client.create_new_service(token, name)
    plain = raw(daemon, "GET", f"/services/{name}", token).json()
    viewed = raw(daemon, "GET", f"/services/{name}?view=status", token).json()
    assert plain == viewed


def test_create_with_health_check_shows_in_target_health(daemon, user):
    project, token, client = user
    name = unique("svc")
    hc = {"rel_path": "{}-{}/MyService?wsdl".format(project, name), "status_codes": "200",
          "interval": 60}
    created = client.create_new_service(token, name, health_check=hc)
    assert created["name"] == name
    th = client.get_service_status(token, name)["status"]["target_health"]
    assert th["health_check_path"] == daemon.url + "/{}-{}/MyService?wsdl".format(project, name)
    assert th["interval"] == 60 and th["status_codes"] == "200" and th["targets"] == []

    push_inert(daemon, project, name)
    # The health check given at create survives the first update, which does not name one.
    assert "Success" in client.update_service(token, name, seed_definition(project, name))
    th = client.get_service_status(token, name)["status"]["target_health"]
    assert th["health_check_path"].endswith("/{}-{}/MyService?wsdl".format(project, name))
    assert th["interval"] == 60 and th["status_codes"] == "200"
    hc_stored = native_service(daemon, project, name)["definition"]["health-check"]
    assert hc_stored["rel_path"] == "/MyService?wsdl" and hc_stored["interval"] == 60


@pytest.mark.parametrize("hc,message", [
    ({"rel_path": "/", "status_codes": "abc", "interval": 30}, "status_codes"),
    ({"rel_path": "/", "status_codes": 200, "interval": 30}, "status_codes"),
    ({"rel_path": "/", "status_codes": "200", "interval": 0}, "interval"),
    ({"rel_path": "/", "status_codes": "200", "interval": "60"}, "interval"),
    ({"rel_path": 5, "status_codes": "200", "interval": 30}, "rel_path"),
    ({"rel_path": "/", "status_codes": "200", "interval": 30, "retries": 3}, "retries"),
])
def test_create_with_bad_health_check(daemon, user, hc, message):
    project, token, client = user
    name = unique("svc")
    with pytest.raises(BadRequestException) as e:
        client.create_new_service(token, name, health_check=hc)
    assert "health_check" in str(e.value) and message in str(e.value)
    with pytest.raises(ServiceNotFoundException):
        client.get_service_status(token, name)


def test_health_check_not_an_object(daemon, user):
    project, token, client = user
    r = raw(daemon, "POST", "/services", token, json={"name": "hcx", "health_check": "/"})
    assert_servicectl_error(r, 400, "health_check")


def test_list_services(daemon, user):
    project, token, client = user
    assert client.list_services(token) == []
    names = sorted([unique("a"), unique("b")])
    for n in names:
        client.create_new_service(token, n)
    listed = client.list_services(token)
    assert [s["name"] for s in listed] == names
    for s in listed:
        deployment = [l["href"] for l in s["links"] if l["rel"] == "deployment"]
        assert deployment == [daemon.url + "/{}-{}".format(project, s["name"])]


def test_update_and_status(daemon, user):
    project, token, client = user
    name = unique("svc")
    client.create_new_service(token, name)
    # An update naming a tag never pushed is refused, saying what to push; nothing is stored.
    result = client.update_service(token, name, seed_definition(project, name))
    assert set(result) == {"Error"}, result
    assert "no bundle tagged 'latest'" in result["Error"], result
    assert native_service(daemon, project, name)["revision"] == 0

    push_inert(daemon, project, name)
    result = client.update_service(token, name, seed_definition(project, name))
    assert set(result) >= {"Success"} and name in result["Success"], result
    assert result.get("revision") == 1

    # The bundle has nothing to run: one instance desired, none running.
    status = client.get_service_status(token, name)["status"]
    assert status["service_status"] == "ACTIVE"
    assert (status["count_desired"], status["count_running"], status["count_pending"]) == (1, 0, 1)
    assert status["tasks"] == [] and status["target_health"]["targets"] == []
    # The runtime reports, in the events, why revision 1 cannot run; events come newest first
    # and the service's creation is the oldest.
    qualified = "(service {}-{}) ".format(project, name)

    def revision_event():
        events = client.get_service_status(token, name)["status"]["events"]
        return events if any("revision 1" in e["message"] for e in events) else None
    events = wait_until(revision_event, 10, "an event about revision 1")
    assert events[-1]["message"] == qualified + "created"
    assert all(e["message"].startswith(qualified) for e in events), events
    assert any("revision 1 cannot run: nothing to run" in e["message"] for e in events), events
    assert all(SERVICECTL_TIME.match(e["created_at"]) for e in events)
    assert [e["created_at"] for e in events] == sorted((e["created_at"] for e in events),
                                                       reverse=True)

    stored = native_service(daemon, project, name)
    assert stored["revision"] == 1
    assert stored["definition"]["environment"] == [
        {"name": "CONTEXT_ROOT", "value": "/{}-{}".format(project, name)}]
    assert stored["definition"]["container-port"] == 80

    # A second update with the same port is a new revision.
    second = dict(seed_definition(project, name), **{"memory-limit": 200})
    assert client.update_service(token, name, second)["revision"] == 2
    assert native_service(daemon, project, name)["definition"]["memory-limit"] == 200


def test_status_of_service_scaled_to_zero(daemon, user):
    project, token, client = user
    name = unique("svc")
    client.create_new_service(token, name)
    push_inert(daemon, project, name)
    r = raw(daemon, "PUT", f"/services/{name}", token,
            json=dict(seed_definition(project, name), replicas=0))
    assert r.status_code == 200, r.text
    status = client.get_service_status(token, name)["status"]
    assert (status["count_desired"], status["count_running"], status["count_pending"]) == (0, 0, 0)


def test_container_port_is_fixed_after_first_update(daemon, user):
    project, token, client = user
    name = unique("svc")
    client.create_new_service(token, name)
    push_inert(daemon, project, name)
    client.update_service(token, name, seed_definition(project, name, port=80))
    # clfpy passes a 400 from update_service through as the JSON body.
    result = client.update_service(token, name, seed_definition(project, name, port=8080))
    assert set(result) == {"Error"}, result
    assert "container-port" in result["Error"] and "8080" in result["Error"]
    r = raw(daemon, "PUT", f"/services/{name}", token,
            json=seed_definition(project, name, port=8080))
    assert_servicectl_error(r, 400, "container-port")
    stored = native_service(daemon, project, name)
    assert stored["revision"] == 1 and stored["definition"]["container-port"] == 80


@pytest.mark.parametrize("changes,field", [
    ({"memory-limit": 50}, "memory-limit"),
    ({"memory-reservation": "100"}, "memory-reservation"),
    ({"container-port": 70000}, "container-port"),
    ({"container-tag": "bad tag"}, "container-tag"),
    ({"environment": [{"name": "1X", "value": "y"}]}, "environment[0].name"),
    ({"environment": [{"key": "A", "value": "y"}]}, "environment[0]"),
    ({"colour": "red"}, "colour"),
])
def test_bad_update_is_400_and_changes_nothing(daemon, user, changes, field):
    project, token, client = user
    name = unique("svc")
    client.create_new_service(token, name)
    client.update_service(token, name, seed_definition(project, name))
    before = native_service(daemon, project, name)
    result = client.update_service(token, name, dict(seed_definition(project, name), **changes))
    assert set(result) == {"Error"} and field in result["Error"], result
    assert native_service(daemon, project, name) == before


@pytest.mark.parametrize("missing", ["container-tag", "memory-reservation", "memory-limit",
                                     "container-port"])
def test_update_without_a_required_key(daemon, user, missing):
    project, token, client = user
    name = unique("svc")
    client.create_new_service(token, name)
    body = seed_definition(project, name)
    del body[missing]
    assert_servicectl_error(raw(daemon, "PUT", f"/services/{name}", token, json=body), 400,
                            missing)
    assert native_service(daemon, project, name)["revision"] == 0


def test_logs(daemon, user):
    project, token, client = user
    name = unique("svc")
    client.create_new_service(token, name)
    assert client.get_service_logs(token, name) == {"logs": []}
    # scripts/get_logs.py passes tail as a string from argv.
    assert client.get_service_logs(token, name, tail="5") == {"logs": []}


@pytest.mark.parametrize("query,key", [("tail=abc", "tail"), ("tail=-1", "tail"),
                                       ("streams=x", "streams")])
def test_logs_bad_parameters(daemon, user, query, key):
    project, token, client = user
    name = unique("svc")
    client.create_new_service(token, name)
    r = raw(daemon, "GET", f"/services/{name}?view=logs&{query}", token)
    assert_servicectl_error(r, 400, key)


def test_unknown_view(daemon, user):
    project, token, client = user
    name = unique("svc")
    client.create_new_service(token, name)
    assert_servicectl_error(raw(daemon, "GET", f"/services/{name}?view=metrics", token), 400,
                            "metrics")


def test_docker_credentials(daemon, user):
    project, token, client = user
    name = unique("svc")
    client.create_new_service(token, name)
    creds = client.get_docker_credentials(token, name)
    # clfpy hands this dict straight to build_and_push_docker_image: keys at the top level.
    assert set(creds) == {"repo_uri", "user", "password", "proxy_endpoint"}
    assert all(isinstance(v, str) and v for v in creds.values()), creds
    assert creds["password"] == token
    assert creds["proxy_endpoint"] == daemon.url
    assert creds["repo_uri"] == daemon.url + "/api/v1/services/{}/artifacts".format(name)


def test_delete(daemon, user):
    project, token, client = user
    name = unique("svc")
    client.create_new_service(token, name)
    client.update_service(token, name, seed_definition(project, name))
    result = client.delete_service(token, name)
    assert isinstance(result, dict) and name in result["Success"], result
    with pytest.raises(ServiceNotFoundException):
        client.get_service_status(token, name)
    with pytest.raises(ServiceNotFoundException):
        client.delete_service(token, name)
    assert client.list_services(token) == []
    # The name can be used again.
    assert client.create_new_service(token, name)["name"] == name


def test_running_service_as_cloudflow_sees_it(daemon, user, capsys):
    """The whole CloudFlow flow with an instance that really runs: create with a health check,
    push the bundle to the repository get_docker_credentials names, update, then read status
    and logs with every key clfpy's print helpers use, and delete."""
    project, token, client = user
    name = unique("web")
    qualified = "{}-{}".format(project, name)
    client.create_new_service(token, name, health_check={
        "rel_path": qualified + "/", "status_codes": "200-499", "interval": 1})
    creds = client.get_docker_credentials(token, name)
    # berth's "repository" is an HTTP endpoint taking bundles; the password is the token.
    r = requests.put(creds["repo_uri"] + "/latest", data=http_server_bundle(),
                     headers={"Authorization": "Bearer " + creds["password"]}, timeout=30)
    assert r.status_code == 201, r.text
    assert "Success" in client.update_service(token, name, seed_definition(project, name, 8080))

    def running():
        st = client.get_service_status(token, name)["status"]
        return st if st["count_running"] == 1 and st["target_health"]["targets"] else None
    status = wait_until(running, 30, "the instance to run and pass its health check")
    assert status["service_status"] == "ACTIVE"
    assert (status["count_desired"], status["count_pending"]) == (1, 0)
    live = [t for t in status["tasks"] if t["last_status"] == "RUNNING"]
    assert len(live) == 1, status["tasks"]
    task = live[0]
    assert task["desired_status"] == "RUNNING"
    assert SERVICECTL_TIME.match(task["created_at"]), task
    assert task["task_definition"] == {
        "name": qualified, "revision": 1, "status": "ACTIVE",
        "container_image": qualified + ":latest", "container_memory_reservation": 100,
        "container_memory_limit": 150, "container_port": 8080}
    # clfpy's CLI does int() on these.
    for key in ("container_memory_reservation", "container_memory_limit", "container_port"):
        int(task["task_definition"][key])
    assert status["target_health"]["targets"] == [
        {"target": task["task_name"], "port": 8080, "health": "healthy"}]
    assert status["target_health"]["health_check_path"] == daemon.url + "/" + qualified + "/"

    # The health probes show up in the server's log, one stream per instance.
    def some_logs():
        logs = client.get_service_logs(token, name, tail=2)["logs"]
        return logs if logs and logs[0]["log_events"] else None
    logs = wait_until(some_logs, 30, "log events from the instance")
    assert len(logs) == 1
    assert logs[0]["stream_name"] == "{0}/{0}/{1}".format(qualified, task["task_name"])
    assert 1 <= len(logs[0]["log_events"]) <= 2
    assert all(SERVICECTL_TIME.match(e["time"]) for e in logs[0]["log_events"])

    # Reachable at its deployment link as CloudFlow's services are: without a platform token
    # (the service authenticates its callers itself).
    link = daemon.url + "/" + qualified + "/"
    r = requests.get(link, timeout=10)
    # Python's http.server answers (it has no file at the prefixed path), not berth's 401.
    assert r.status_code == 404 and "Nothing matches the given URI" in r.text, r.text
    # Said in its definition, which an update may turn back to "token".
    assert daemon.get(f"/api/v1/services/{name}?project={project}").json()["definition"]["auth"] \
        == "public"

    client.print_service_status(token, name)
    client.print_service_logs(token, name, tail=5)
    out = capsys.readouterr().out
    assert "Running count: 1" in out
    assert "    Container port: 8080" in out
    assert "Target 1/1: {}, Port: 8080, Health: healthy".format(task["task_name"]) in out
    assert "Events for log stream 1/1 - {0}/{0}/{1}:".format(qualified, task["task_name"]) in out

    # Deleting the service stops its instance.
    started = [e["message"] for e in status["events"]
               if task["task_name"] in e["message"] and "(pid " in e["message"]]
    assert started, status["events"]
    pid = int(started[0].rsplit("(pid ", 1)[1].rstrip(")"))
    assert pid_alive(pid)
    assert name in client.delete_service(token, name)["Success"]
    wait_until(lambda: not pid_alive(pid), 15, f"instance process {pid} to end")


# --- error codes -------------------------------------------------------------------------------


@pytest.mark.parametrize("method,path", [
    ("GET", "/services"), ("POST", "/services"), ("GET", "/services/x"),
    ("PUT", "/services/x"), ("DELETE", "/services/x"),
])
def test_missing_token_is_400(daemon, method, path):
    r = raw(daemon, method, path, json={"name": "x"})
    assert_servicectl_error(r, 400, "X-Auth-Token")


@pytest.mark.parametrize("bad", ["nonsense", "berth_" + "0" * 64])
def test_invalid_token_is_403(daemon, user, bad):
    project, token, client = user
    name = unique("svc")
    client.create_new_service(token, name)
    calls = [
        lambda: client.list_services(bad),
        lambda: client.create_new_service(bad, unique("svc")),
        lambda: client.get_service_status(bad, name),
        lambda: client.get_service_logs(bad, name),
        lambda: client.get_docker_credentials(bad, name),
        lambda: client.update_service(bad, name, seed_definition(project, name)),
        lambda: client.delete_service(bad, name),
    ]
    for call in calls:
        with pytest.raises(AuthenticationFailedException):
            call()
    assert_servicectl_error(raw(daemon, "GET", "/services", bad), 403, "token")
    # Nothing happened to the service.
    assert native_service(daemon, project, name)["revision"] == 0


def test_revoked_token_is_403(daemon, user):
    project, token, client = user
    client.list_services(token)
    me = daemon.get("/api/v1/whoami", token=token).json()["token_id"]
    daemon.delete(f"/api/v1/tokens/{me}")
    with pytest.raises(AuthenticationFailedException):
        client.list_services(token)
    assert_servicectl_error(raw(daemon, "GET", "/services", token), 403, "revoked")


def test_bearer_token_is_accepted_too(daemon, user):
    project, token, client = user
    r = raw(daemon, "GET", "/services", headers={"Authorization": "Bearer " + token})
    assert r.status_code == 200 and r.json() == []


def test_existing_name_is_405(daemon, user):
    project, token, client = user
    name = unique("svc")
    client.create_new_service(token, name)
    with pytest.raises(MethodNotAllowedException) as e:
        client.create_new_service(token, name)
    assert name in str(e.value) and "exists" in str(e.value)
    assert_servicectl_error(raw(daemon, "POST", "/services", token, json={"name": name}), 405)


@pytest.mark.parametrize("name,rule", [
    ("Bad", "lowercase letter"),
    ("1svc", "begin with a lowercase letter"),
    ("svc-", "must end with"),
    ("a_b", "only lowercase letters"),
    ("", "empty"),
    ("x" * 40, "at most 32"),
    ("café", "only lowercase letters"),
    ("with space", "only lowercase letters"),
])
def test_bad_names_are_400(daemon, user, name, rule):
    project, token, client = user
    with pytest.raises(BadRequestException) as e:
        client.create_new_service(token, name)
    assert rule in str(e.value)
    assert client.list_services(token) == []


def test_name_length_counts_the_project(daemon, user):
    project, token, client = user
    room = 32 - len(project) - 1
    assert client.create_new_service(token, "n" * room)["name"] == "n" * room
    with pytest.raises(BadRequestException) as e:
        client.create_new_service(token, "m" * (room + 1))
    assert "at most 32" in str(e.value)


@pytest.mark.parametrize("body", [{}, {"name": 5}, ["x"], "x"])
def test_create_body_without_a_name_string(daemon, user, body):
    project, token, client = user
    assert_servicectl_error(raw(daemon, "POST", "/services", token, json=body), 400)


def test_unknown_service_is_404(daemon, user):
    project, token, client = user
    for call in (lambda: client.get_service_status(token, "nosuch"),
                 lambda: client.get_service_logs(token, "nosuch"),
                 lambda: client.get_docker_credentials(token, "nosuch"),
                 lambda: client.update_service(token, "nosuch", seed_definition(project, "x")),
                 lambda: client.delete_service(token, "nosuch")):
        with pytest.raises(ServiceNotFoundException) as e:
            call()
        assert "nosuch" in str(e.value)


@pytest.mark.parametrize("method,path", [("POST", "/services"), ("PUT", "/services/{name}")])
def test_malformed_json_is_400(daemon, user, method, path):
    project, token, client = user
    name = unique("svc")
    client.create_new_service(token, name)
    r = raw(daemon, method, path.format(name=name), token, data=b'{"name": ',
            headers={"Content-Type": "application/json"})
    assert_servicectl_error(r, 400, "malformed JSON")
    r = raw(daemon, method, path.format(name=name), token, data=b"")
    assert_servicectl_error(r, 400, "empty")


def test_oversized_body_is_413(daemon, user):
    project, token, client = user
    body = json.dumps({"name": "big"}).encode() + b" " * MIB
    assert_servicectl_error(raw(daemon, "POST", "/services", token, data=body), 413, "limit")
    assert client.list_services(token) == []


def test_oversized_headers_are_431_error(daemon, user):
    project, token, client = user
    r = raw(daemon, "GET", "/services", token, headers={"X-Padding": "p" * 20000})
    assert_servicectl_error(r, 431, "limit")


def test_oversized_chunked_body_is_413(daemon, user):
    project, token, client = user
    chunks = (b" " * 65536 for _ in range(20))
    assert_servicectl_error(raw(daemon, "POST", "/services", token, data=chunks), 413, "limit")


@pytest.mark.parametrize("method,path,allowed", [
    ("PATCH", "/services", {"GET", "POST"}),
    ("DELETE", "/services", {"GET", "POST"}),
    ("POST", "/services/x", {"GET", "PUT", "DELETE"}),
    ("PATCH", "/services/x", {"GET", "PUT", "DELETE"}),
])
def test_wrong_method_is_405(daemon, user, method, path, allowed):
    project, token, client = user
    r = raw(daemon, method, path, token, json={"name": "x"})
    assert_servicectl_error(r, 405, method)
    assert set(r.headers["Allow"].split(", ")) == allowed


@pytest.mark.parametrize("path", ["", "/", "/nope", "/services/x/y"])
def test_unknown_path_is_404_error(daemon, user, path):
    project, token, client = user
    assert_servicectl_error(raw(daemon, "GET", path, token), 404, "no such endpoint")


# --- projects ----------------------------------------------------------------------------------


def test_projects_do_not_see_each_other(daemon):
    a, token_a = project_with_token(daemon)
    b, token_b = project_with_token(daemon)
    client = ServicesClient(daemon.url + "/servicectl-1")  # the CLI's form: no trailing slash
    name = unique("svc")
    client.create_new_service(token_b, name)
    assert client.list_services(token_a) == []
    with pytest.raises(ServiceNotFoundException):
        client.get_service_status(token_a, name)
    with pytest.raises(ServiceNotFoundException):
        client.delete_service(token_a, name)
    # The same name is free in A's project and deploys under A's path.
    created = client.create_new_service(token_a, name)
    deployment = [l["href"] for l in created["links"] if l["rel"] == "deployment"][0]
    assert deployment.endswith("/{}-{}".format(a, name))
    # ?project= naming another project is refused (a permission error, not 403 "token").
    r = raw(daemon, "GET", f"/services?project={b}", token_a)
    assert r.status_code == 403
    assert b in r.json()["Error"]
    assert [s["name"] for s in client.list_services(token_b)] == [name]


def test_admin_token_acts_on_default_project(daemon):
    client = ServicesClient(daemon.url + "/servicectl-1/")
    name = unique("svc")
    created = client.create_new_service(daemon.admin_token, name)
    deployment = [l["href"] for l in created["links"] if l["rel"] == "deployment"][0]
    assert deployment.endswith("/default-" + name)
    assert daemon.get(f"/api/v1/services/{name}").json()["project"] == "default"
    client.delete_service(daemon.admin_token, name)


# --- the client's print helpers digest every answer --------------------------------------------


def test_print_helpers(daemon, user, capsys):
    project, token, client = user
    name = unique("svc")
    hc = {"rel_path": "{}-{}/".format(project, name), "status_codes": "200-299", "interval": 15}
    client.create_new_service(token, name, health_check=hc)

    client.print_service_list(token)
    client.print_service_status(token, name)
    client.print_service_logs(token, name, tail=10)
    out = capsys.readouterr().out
    assert "1 services currently available:" in out
    assert "  Deployment path: {}/{}-{}".format(daemon.url, project, name) in out
    assert "Status report for service {}:".format(name) in out
    assert "Service status: unknown" in out and "Pending count: unknown" in out
    assert "Health-check interval: 15" in out and "Health-check status codes: 200-299" in out
    assert "Health-check path: {}/{}-{}/".format(daemon.url, project, name) in out
    assert "Printing logs for service '{}'".format(name) in out

    push_inert(daemon, project, name)
    client.update_service(token, name, seed_definition(project, name))
    client.print_service_status(token, name)
    out = capsys.readouterr().out
    assert "Service status: ACTIVE" in out and "Desired count: 1" in out
    assert "Running count: 0" in out
    assert "(service {}-{}) created".format(project, name) in out
