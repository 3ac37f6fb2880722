"""The access matrix: every operation of the OpenAPI document (which a unit test keeps equal to
the routes berth serves) called by six callers, against real resources of a project:

- no token, a revoked token of the project, the instance token of a deleted service of the
  project: refused before anything happens (401; the servicectl dialect: 400 / 403 as
  CloudFlow answers), except for the operations the document says need none;
- another project's token, with and without `?project=` naming the victim: 403 or 404, and a
  2xx answer (about its own project) never carries the victim's secrets or names;
- the project's own token and an admin token: never 401 / 403, except 403 for the operations
  marked `x-berth-access: admin` when the caller is not an admin.

No caller ever gets a 5xx that the operation does not document, and after the refused callers
the victim project is exactly as it was.
"""
import json
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

from conftest import (create_project, create_token, instance_processes,
                      push_bundle, unique, wait_until)

SPEC_PATH = Path(__file__).resolve().parents[2] / "src/api/docs/openapi.json"
METHODS = ("get", "post", "put", "patch", "delete")
STREAM_TYPES = ("application/x-ndjson", "text/event-stream")


def operations(spec):
    """(method, path, operation, parameters) for every documented operation."""
    out = []
    for path, item in spec["paths"].items():
        shared = item.get("parameters", [])
        for method in METHODS:
            if method in item:
                op = item[method]
                params = [resolve(spec, p) for p in shared + op.get("parameters", [])]
                out.append((method.upper(), path, op, params))
    return out


def resolve(spec, obj):
    while isinstance(obj, dict) and "$ref" in obj:
        node = spec
        for part in obj["$ref"].lstrip("#/").split("/"):
            node = node[part]
        obj = node
    return obj


class Victim:
    """A project with one of everything, and the secret that must never reach anyone else."""

    def __init__(self, d, tmp_path):
        self.d = d
        self.project = create_project(d, unique("victim"))
        self.secret = unique("s3cr3tvalue")
        p = f"?project={self.project}"
        self.service = unique("svc")
        self.pipeline = unique("pl")
        self.recipe = unique("r")[-11:]  # recipe names are at most 11 characters
        self.node_type = unique("nt")
        self.project_dir = tmp_path / self.project
        self.project_dir.mkdir()

        def ok(r):
            assert r.status_code in (200, 201), r.text
            return r.json() if r.content else {}

        ok(d.post("/api/v1/services" + p, json={"name": self.service}))
        push_bundle(d, self.service, "v1", project=self.project)
        ok(d.put(f"/api/v1/services/{self.service}" + p, json={
            "container-tag": "v1", "container-port": 8080,
            "environment": [{"name": "SECRET", "value": self.secret}]}))
        ok(d.put(f"/api/v1/projects/{self.project}/env", json={"env": {"SECRET": self.secret}}))
        self.token = create_token(d, project=self.project)  # the one DELETE /tokens/{id} names
        self.notification = ok(d.post("/api/v1/notifications" + p, json={
            "message": "the secret is " + self.secret, "service": self.service}))["id"]
        ok(d.post(f"/api/v1/pipelines{p}&project_dir={self.project_dir}", data=json.dumps({
            "name": self.pipeline, "steps": [{"name": "a", "command": f"echo {self.secret}"}]})))
        run = ok(d.post(f"/api/v1/pipelines/{self.pipeline}/runs" + p, json={}))
        self.run = run["uuid"] if "uuid" in run else run["id"]
        wait_until(lambda: d.get(f"/api/v1/runs/{self.run}" + p).json()["status"]
                   in ("SUCCESS", "FAILURE", "ABORTED"), 30, "the victim's run to end")
        self.job = ok(d.post("/api/v1/jobs" + p, json={
            "name": unique("job"), "pipeline": self.pipeline, "schedule": "0 3 * * *"}))
        self.job = self.job.get("uuid", self.job.get("id"))
        ok(d.post("/api/v1/recipes" + p, json={
            "name": self.recipe, "url": self.recipe, "graph": {"nodes": ["ping"], "edges": []},
            "args": [{"secret": self.secret}], "handlers": {"get": "ping"}}))
        wait_until(lambda: d.get(f"/api/v1/services/{self.service}/status" + p).json()
                   ["running"] == 1, 30, "the victim's service to run")

    def path_value(self, path, name):
        if name == "p":
            return "greeting" if "/parameters/" in path else self.project
        if name == "id":
            if path.startswith("/api/v1/tokens"):
                return self.token["id"]
            if "/notifications/" in path:
                return str(self.notification)
            if "/jobs/" in path:
                return self.job
            return self.run
        return {"name": self.recipe if "/recipes/" in path else
                self.pipeline if "/pipelines/" in path else self.service,
                "tag": "v1", "version": "1.0.0", "pipeline": self.pipeline, "step": "a",
                "project_uuid": self.project, "pipeline_uuid": self.pipeline,
                "type": self.node_type, "t": "redis", "url": self.recipe,
                "file": "index.html"}[name]

    def snapshot(self):
        """What the victim project holds, as an admin sees it."""
        d, p, s = self.d, f"?project={self.project}", self.service

        def get(path):
            r = d.get(path)
            assert r.status_code == 200, f"{path}: {r.text}"
            return r.json()
        return {
            "services": sorted((x["name"], x.get("revision")) for x in
                               get("/api/v1/services" + p)["services"]),
            "tokens": sorted((t["id"], t.get("revoked_at")) for t in
                             get("/api/v1/tokens" + p)["tokens"]),
            "notifications": sorted((n["id"], n["count"]) for n in
                                    get("/api/v1/notifications" + p)["notifications"]),
            "pipelines": get("/api/v1/pipelines" + p),
            "runs": sorted((r.get("uuid", r.get("id")), r["status"]) for r in
                           get("/api/v1/runs" + p)["runs"]),
            "jobs": get("/api/v1/jobs" + p),
            "recipes": sorted((v["name"], v["state"]) for v in
                              get("/api/v1/recipes" + p)["recipes"]),
            "env": get(f"/api/v1/projects/{self.project}/env"),
            "revisions": len(get(f"/api/v1/services/{s}/revisions" + p)["revisions"]),
            "artifacts": get(f"/api/v1/services/{s}/artifacts" + p),
            "versions": get(f"/api/v1/services/{s}/versions" + p),
            "desired_running": get(f"/api/v1/services/{s}/status" + p)["desired_running"],
        }


def aimed_at(example, victim):
    """The example with its project and project_dir values the victim's."""
    if isinstance(example, dict):
        return {k: victim.project if k == "project" else
                str(victim.d.data_dir / "projects" / victim.project) if k == "project_dir" else
                aimed_at(v, victim) for k, v in example.items()}
    if isinstance(example, list):
        return [aimed_at(v, victim) for v in example]
    return example


def body_of(op, victim):
    """(data, content type) for the operation's request body: its example, aimed at the
    victim's project, or a minimal one."""
    content = op.get("requestBody", {}).get("content", {})
    if "application/json" in content:
        example = content["application/json"].get("example", {})
        return json.dumps(aimed_at(example, victim)), "application/json"
    if "application/yaml" in content:
        return content["application/yaml"].get("example", ""), "application/yaml"
    if "application/x-www-form-urlencoded" in content:
        return f"name={victim.recipe}&token=", "application/x-www-form-urlencoded"
    if content:
        return b"", next(iter(content))
    return None, None


class Call:
    def __init__(self, method, path, op, params, victim):
        self.method, self.op = method, op
        self.public = op.get("security") == []
        self.optional = {} in op.get("security", [{"bearerToken": []}])
        self.admin_only = op.get("x-berth-access") == "admin"
        self.servicectl = path.startswith("/servicectl-1/")
        self.templated = "{" in path
        self.path = path
        for p in params:
            if p.get("in") == "path":
                self.path = self.path.replace("{%s}" % p["name"],
                                              quote(victim.path_value(path, p["name"]), safe=""))
        self.query = {}
        for p in params:
            if p.get("in") == "query" and p.get("required"):
                self.query[p["name"]] = victim.recipe
        if path.startswith("/neptune/services/"):  # what names the recipe there
            self.query.setdefault("id", victim.recipe)
            self.query.setdefault("service", victim.recipe)
        self.documented_5xx = {int(c) for c in op.get("responses", {}) if c.startswith("5")}
        self.data, self.content_type = body_of(op, victim)
        self.destructive = method == "DELETE" or path.endswith(("/destruct", "/reset", "/stop",
                                                                "/cancel"))

    def __repr__(self):
        return f"{self.method} {self.path}"

    def send(self, d, token, project=None, servicectl_header=False):
        headers = {}
        if token:
            if self.servicectl or servicectl_header:
                headers["X-Auth-Token"] = token
            else:
                headers["Authorization"] = "Bearer " + token
        if self.content_type:
            headers["Content-Type"] = self.content_type
        query = dict(self.query)
        if project:
            query["project"] = project
        r = requests.request(self.method, d.url + self.path, params=query, headers=headers,
                             data=self.data, timeout=30, stream=True, allow_redirects=False)
        if r.headers.get("Content-Type", "").split(";")[0] in STREAM_TYPES:
            body = ""  # a stream: its status and headers are the answer
        else:
            body = r.content.decode(errors="replace")
        r.close()
        return r.status_code, body


def clean_up(d):
    """Stops through the API what the callers started: sessions, recipes, then services."""
    for project in (p["name"] for p in d.get("/api/v1/projects").json()["projects"]):
        q = f"?project={project}"
        for s in d.get("/api/v1/sessions" + q).json().get("sessions", []):
            d.delete(f"/api/v1/sessions/{s['pipeline']}" + q)
        for r in d.get("/api/v1/recipes" + q).json()["recipes"]:
            d.post(f"/api/v1/recipes/{r['name']}/stop" + q)
        for s in d.get("/api/v1/services" + q).json()["services"]:
            d.delete(f"/api/v1/services/{s['name']}" + q)
    # A delete answers before the instances have drained.
    wait_until(lambda: not instance_processes(d.data_dir), 30, "the instances to stop")


def revoked_token(d, project):
    t = create_token(d, project=project)
    assert d.delete(f"/api/v1/tokens/{t['id']}").status_code == 200
    return t["token"]


def deleted_services_token(d, project):
    """The instance token of a service of `project` that has since been deleted."""
    name = unique("gone")
    p = f"?project={project}"
    assert d.post("/api/v1/services" + p, json={"name": name}).status_code == 201
    push_bundle(d, name, "v1", project=project)
    assert d.put(f"/api/v1/services/{name}" + p,
                 json={"container-tag": "v1", "container-port": 8080}).status_code == 200
    token_file = d.data_dir / "services" / project / name / "token.json"
    wait_until(token_file.exists, 30, "the instance token to be minted")
    secret = json.loads(token_file.read_text())["secret"]
    assert d.get("/api/v1/whoami", token=secret).status_code == 200  # it works while it lives
    assert d.delete(f"/api/v1/services/{name}" + p).status_code == 200
    return secret


def test_every_operation_refuses_every_caller_it_must(daemon, tmp_path):
    d, base = daemon, tmp_path
    try:
        spec = d.get("/api/v1/openapi.json", token="").json()
        assert spec == json.loads(SPEC_PATH.read_text()), "the daemon serves another document"
        victim = Victim(d, base)
        calls = [Call(m, p, op, params, victim) for m, p, op, params in operations(spec)]
        assert len(calls) > 100
        other = create_token(d, project=create_project(d))["token"]
        callers = {"no token": "", "revoked": revoked_token(d, victim.project),
                   "deleted service's": deleted_services_token(d, victim.project)}
        before = victim.snapshot()
        failures = []

        def expect(call, who, status, body, ok, why):
            if status >= 500 and status not in call.documented_5xx:
                failures.append(f"{call} by {who}: {status} (undocumented 5xx) {body[:200]}")
            elif not ok:
                failures.append(f"{call} by {who}: {status}, expected {why}: {body[:200]}")

        for call in calls:
            for who, token in callers.items():
                status, body = call.send(d, token)
                if call.public:  # a login with a bad token is refused, and says so
                    expect(call, who, status, body, True, "no 5xx")
                elif call.optional and not token:
                    # Neptune's clients send no token: on loopback they act on `default`.
                    expect(call, who, status, body, status != 401 and victim.secret not in body,
                           "an answer about `default` only")
                elif call.servicectl:
                    expect(call, who, status, body, status == (400 if not token else 403),
                           "CloudFlow's 400 without a token, 403 with a bad one")
                else:
                    expect(call, who, status, body, status == 401, "401")
            if call.public:
                continue
            for project in (victim.project, None):
                who = "another project" + (" naming the victim" if project else "")
                status, body = call.send(d, other, project)
                leaked = victim.secret in body or (not call.templated and victim.service in body)
                if 200 <= status < 300:
                    expect(call, who, status, body, not leaked,
                           "an answer about its own project only")
                elif project:
                    expect(call, who, status, body, status in (403, 404), "403 or 404")
                else:  # acting on its own project: any answer about it will do
                    expect(call, who, status, body, not leaked, "no word of the victim")
        assert not failures, "\n".join(failures)
        assert victim.snapshot() == before, "a refused caller changed the victim's project"

        # The owner, then an admin on a project of its own: nothing but the admin-only
        # operations is refused; the destructive ones go last so the others meet real resources.
        admin_victim = Victim(d, base)
        ordered = sorted(calls, key=lambda c: c.destructive)
        own = create_token(d, project=victim.project)["token"]
        for call in ordered:
            if call.public:
                continue
            status, body = call.send(d, own, victim.project)
            if call.admin_only:
                expect(call, "its project", status, body, status == 403, "403 (admin only)")
            else:
                expect(call, "its project", status, body, status not in (401, 403), "no refusal")
                if call.method == "GET" and not call.templated and not call.servicectl:
                    expect(call, "its project", status, body, 200 <= status < 300, "a listing")
        admin_calls = [Call(m, p, op, params, admin_victim)
                       for m, p, op, params in operations(spec)]
        for call in sorted(admin_calls, key=lambda c: c.destructive):
            if call.public:
                continue
            status, body = call.send(d, d.admin_token, admin_victim.project)
            expect(call, "an admin", status, body, status not in (401, 403), "no refusal")
        assert not failures, "\n".join(failures)
    finally:
        clean_up(d)
