"""Seed 000 end to end: services from templates, found by name from a pipeline step with the
seed's own snippets (`import berth` in place of `import orchest`), Jupyter in headless Chromium
through the gateway, sessions that keep what they wrote under /data, the project environment,
and bad input that leaves nothing half-made."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import requests

from conftest import (BERTH_BIN, HTTP_TIMEOUT, assert_native_error, clean_env,
                      instance_processes, wait_until)

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("BERTH_TEST_ARTIFACTS", REPO / "build" / "test-artifacts"))


def step(d, code):
    """Runs `code` the way a pipeline step runs: its own process, with the platform's env."""
    env = clean_env(BERTH_URL=d.url, BERTH_TOKEN=d.admin_token,
                    PYTHONPATH=str(REPO / "sdk/python"))
    p = subprocess.run(["/usr/bin/python3", "-c", textwrap.dedent(code)], capture_output=True,
                       text=True, env=env, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout


def add(d, template, **values):
    r = d.post(f"/api/v1/templates/{template}/services", json={"values": values})
    assert r.status_code == 201, r.text
    return r.json()


def wait_ready(d, name):
    def ready():
        st = d.get(f"/api/v1/services/{name}/status").json()
        return st if st["running"] >= 1 else None
    return wait_until(ready, 60, f"{name} running")


REDIS_SNIPPET = """
    import berth
    import redis

    redis_host = berth.get_service("redis")["internal_hostname"]
    redis_client = redis.Redis(host=redis_host, port=6379, db=0)
    redis_client.set("hello", "there")
    print(redis_client.get("hello"))
"""

POSTGRES_SNIPPET = """
    import berth
    import psycopg2

    postgres_host = berth.get_service("postgres")["internal_hostname"]
    conn = psycopg2.connect(dbname="postgres", user="postgres", host=postgres_host)
    cur = conn.cursor()
    cur.execute("CREATE TABLE test (id serial PRIMARY KEY, num integer, data varchar);")
    cur.execute("INSERT INTO test (num, data) VALUES (%s, %s)", (1337, "hello"))
    cur.execute("SELECT * FROM test;")
    print(cur.fetchone())
    conn.commit()
"""


@pytest.fixture(scope="module")
def stores(daemon):
    redis = add(daemon, "redis")
    postgres = add(daemon, "postgres")
    assert redis["url"] is None and postgres["url"] is None, "internal-only services have no URL"
    wait_ready(daemon, "redis")
    wait_ready(daemon, "postgres")
    yield daemon
    for name in ("redis", "postgres"):
        daemon.delete(f"/api/v1/services/{name}")
    # Deleting stops instances in the background; the module's leak check comes after.
    wait_until(lambda: not instance_processes(daemon.data_dir), 30, "every instance stopped")


def test_seed_snippets_run_unchanged(stores):
    assert step(stores, REDIS_SNIPPET).strip() == "b'there'"
    assert step(stores, POSTGRES_SNIPPET).strip() == "(1, 1337, 'hello')"
    ep = stores.get("/api/v1/services/redis/endpoint").json()
    assert ep["internal_hostname"].startswith("127.") and ep["ports"] == [6379], ep
    assert ep["external_urls"] == [] and ep["base_paths"] == [], "no URL that answers 404"
    # Internal-only: the gateway does not route to Redis.
    r = requests.get(stores.url + "/default-redis/", timeout=HTTP_TIMEOUT,
                     headers={"Authorization": "Bearer " + stores.admin_token})
    assert r.status_code == 404, r.text
    out = step(stores, """
        import berth
        try:
            berth.get_service("nope")
        except berth.ServiceNotFound as e:
            print("not found:", e)
        print(sorted(berth.get_services()))
    """)
    assert "not found:" in out and "'postgres', 'redis'" in out, out


def test_the_services_file_is_current_and_every_instance_finds_it(stores):
    """$BERTH_SERVICES_FILE lists the project's ready services (the BERTH_SERVICE_* variables
    are a snapshot of a program's start), and follows them as they stop and start."""
    redis = stores.get("/api/v1/services/redis/endpoint").json()["internal_hostname"]
    r = stores.post("/api/v1/services", json={"name": "reader"})
    assert r.status_code == 201, r.text
    r = stores.put("/api/v1/services/reader", json={"command": [
        "/bin/sh", "-c", 'cat "$BERTH_SERVICES_FILE"; '
        'exec /usr/bin/python3 -m http.server --bind "$HOST" "$PORT"'], "container-port": 8000})
    assert r.status_code == 200, r.text

    def said():
        lines = stores.get("/api/v1/services/reader/logs?tail=50").json()["lines"]
        text = "\n".join(l["message"] for l in lines)
        return text if "BERTH_SERVICE_REDIS_HOST" in text else None
    text = wait_until(said, 30, "the reader printing the services file")
    assert f"BERTH_SERVICE_REDIS_HOST={redis}" in text and "BERTH_SERVICE_REDIS_PORT=6379" in text
    assert "BERTH_SERVICE_POSTGRES_PORT=5432" in text, text

    path = stores.data_dir / "projects" / "default" / "data" / ".berth" / "services.env"
    assert stores.post("/api/v1/services/postgres/stop").status_code == 200
    wait_until(lambda: "POSTGRES" not in path.read_text(), 30, "postgres gone from the file")
    assert f"BERTH_SERVICE_REDIS_HOST={redis}\n" in path.read_text()
    assert "BERTH_SERVICE_READER_HOST=" in path.read_text()
    assert stores.post("/api/v1/services/postgres/start").status_code == 200
    wait_until(lambda: "BERTH_SERVICE_POSTGRES_HOST=" in path.read_text(), 60, "postgres back")
    assert stores.delete("/api/v1/services/reader").status_code == 200
    wait_until(lambda: "READER" not in path.read_text(), 30, "the deleted service gone")


def test_session_restart_keeps_what_was_written_under_data(stores):
    # Stopped, so that the session starts them: a session stops only what it started.
    for name in ("redis", "postgres"):
        assert stores.post(f"/api/v1/services/{name}/stop").status_code == 200
    r = stores.post("/api/v1/sessions", json={"project": "default", "pipeline": "etl"})
    assert r.status_code == 201, r.text
    assert {s["name"] for s in r.json()["services"]} >= {"redis", "postgres"}, r.json()
    wait_until(lambda: stores.get("/api/v1/sessions/etl").json()["state"] == "running", 60,
               "session running")
    assert_native_error(stores.post("/api/v1/sessions", json={"pipeline": "etl"}), 409,
                        "already_exists")
    # Names a URL path cannot address, or that could pass for paths, change nothing.
    before = stores.get("/api/v1/sessions").json()
    for bad in ["a/b", "..", ".hidden", "with space", "line\nbreak", "nul\u0000", "x" * 129]:
        assert_native_error(stores.post("/api/v1/sessions", json={"pipeline": bad}), 400,
                            "invalid_argument", contains=["letters, digits"])
    assert stores.get("/api/v1/sessions").json() == before
    step(stores, """
        import berth, redis, psycopg2
        redis.Redis(host=berth.get_service("redis")["internal_hostname"]).set("kept", "yes")
        conn = psycopg2.connect(dbname="postgres", user="postgres",
                                host=berth.get_service("postgres")["internal_hostname"])
        cur = conn.cursor()
        cur.execute("CREATE TABLE kept (v text)")
        cur.execute("INSERT INTO kept VALUES ('across sessions')")
        conn.commit()
    """)
    r = stores.delete("/api/v1/sessions/etl")
    assert r.status_code == 200 and r.json()["state"] == "stopping", r.text
    assert_native_error(stores.get("/api/v1/sessions/etl"), 404, "not_found")

    def stopped():
        st = stores.get("/api/v1/services/redis/status").json()
        return all(i["state"] not in ("running", "starting", "stopping") for i in st["instances"])
    wait_until(stopped, 30, "redis stopped with the session")
    r = stores.post("/api/v1/sessions", json={"pipeline": "etl"})
    assert r.status_code == 201, r.text
    wait_until(lambda: stores.get("/api/v1/sessions/etl").json()["state"] == "running", 60,
               "session running again")
    out = step(stores, """
        import berth, redis, psycopg2
        print(redis.Redis(host=berth.get_service("redis")["internal_hostname"]).get("kept"))
        conn = psycopg2.connect(dbname="postgres", user="postgres",
                                host=berth.get_service("postgres")["internal_hostname"])
        cur = conn.cursor()
        cur.execute("SELECT v FROM kept")
        print(cur.fetchone()[0])
    """)
    assert out.split("\n")[:2] == ["b'yes'", "across sessions"], out
    # Two sessions share the project's services: they stop with the last one.
    assert stores.post("/api/v1/sessions", json={"pipeline": "report"}).status_code == 201
    assert stores.delete("/api/v1/sessions/etl").status_code == 200
    st = stores.get("/api/v1/services/redis/status").json()
    assert st["desired_running"] and st["running"] == 1, st
    assert stores.delete("/api/v1/sessions/report").status_code == 200
    assert not stores.get("/api/v1/services/redis/status").json()["desired_running"]

    # Started by hand, a service outlives the sessions that used it.
    for name in ("redis", "postgres"):
        assert stores.post(f"/api/v1/services/{name}/start").status_code == 200
    wait_ready(stores, "redis")
    assert stores.post("/api/v1/sessions", json={"pipeline": "etl"}).status_code == 201
    assert stores.delete("/api/v1/sessions/etl").status_code == 200
    for name in ("redis", "postgres"):
        st = stores.get(f"/api/v1/services/{name}/status").json()
        assert st["desired_running"], (name, st)


def test_a_service_that_cannot_start_says_why_in_the_session(daemon):
    r = daemon.post("/api/v1/services", json={"name": "broken"})
    assert r.status_code == 201, r.text
    r = daemon.put("/api/v1/services/broken",
                   json={"command": ["sh", "-c", "echo cannot find my model >&2; exit 1"],
                         "scope": ["interactive"]})
    assert r.status_code == 200, r.text
    r = daemon.post("/api/v1/sessions", json={"pipeline": "train"})
    assert r.status_code == 201, r.text

    def failed():
        s = daemon.get("/api/v1/sessions/train").json()
        broken = [x for x in s["services"] if x["name"] == "broken"]
        return s if s["state"] == "failed" and broken and broken[0].get("reason") else None
    s = wait_until(failed, 60, "the session reporting the failure")
    reason = next(x for x in s["services"] if x["name"] == "broken")["reason"]
    assert "crash" in reason or "exit" in reason, reason
    logs = daemon.get("/api/v1/services/broken/logs?tail=50").json()["lines"]
    assert any("cannot find my model" in l["message"] for l in logs), logs
    daemon.delete("/api/v1/sessions/train")
    daemon.delete("/api/v1/services/broken")


def test_jupyter_in_chromium_through_the_gateway(daemon):
    add(daemon, "jupyter")
    wait_ready(daemon, "jupyter")
    notebook = daemon.data_dir / "projects/default/project/berth.ipynb"
    notebook.write_text(json.dumps({
        "cells": [{"cell_type": "code", "execution_count": None, "metadata": {},
                   "outputs": [], "source": []}],
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
                                    "name": "python3"}},
        "nbformat": 4, "nbformat_minor": 5}))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "jupyter.png"
    p = subprocess.run(["node", str(REPO / "tests/browser/jupyter.mjs"), daemon.url,
                        daemon.admin_token, "/default-jupyter", str(shot)],
                       capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "kernel answered through the gateway" in p.stdout
    assert shot.stat().st_size > 10_000, "the screenshot is empty"
    daemon.delete("/api/v1/services/jupyter")


def test_project_env_is_inherited_and_the_definition_wins(daemon):
    r = daemon.put("/api/v1/projects/default/env", json={"env": {"GREETING": "inherited",
                                                                 "ONLY_PROJECT": "p"}})
    assert r.status_code == 200 and r.json()["env"]["GREETING"] == "inherited", r.text
    assert_native_error(daemon.put("/api/v1/projects/default/env", json={"env": {"1X": "v"}}),
                        400, "invalid_argument", ["1X"])
    assert_native_error(daemon.put("/api/v1/projects/default/env", json={"env": {"X": 1}}),
                        400, "invalid_argument", ["string"])
    daemon.post("/api/v1/services", json={"name": "envy"})
    r = daemon.put("/api/v1/services/envy", json={
        "command": ["sh", "-c", "env > $BERTH_DATA/env-$BERTH_SERVICE.txt; "
                                "exec python3 -m http.server $PORT --bind $HOST"],
        "inherited-environment": ["GREETING", "ONLY_PROJECT"],
        "environment": [{"name": "GREETING", "value": "own"}]})
    assert r.status_code == 200, r.text
    wait_ready(daemon, "envy")
    env_file = daemon.data_dir / "projects/default/data/env-envy.txt"
    env = dict(l.split("=", 1) for l in env_file.read_text().splitlines() if "=" in l)
    assert env["GREETING"] == "own" and env["ONLY_PROJECT"] == "p", env
    daemon.delete("/api/v1/services/envy")


def test_bad_input_leaves_nothing_half_made(daemon):
    before = {s["name"] for s in daemon.get("/api/v1/services").json()["services"]}
    assert_native_error(daemon.post("/api/v1/templates/mongodb/services", json={}), 404,
                        "not_found", ["redis", "postgres"])
    assert_native_error(daemon.post("/api/v1/templates/custom/services", json={}), 400,
                        "invalid_argument", ["command"])
    assert_native_error(daemon.post("/api/v1/templates/custom/services",
                                    json={"values": {"command": "true", "port": "70000"}}),
                        400, "invalid_argument", ["65535"])
    assert_native_error(daemon.post("/api/v1/templates/redis/services",
                                    json={"values": {"colour": "red"}}), 400, "invalid_argument",
                        ["colour", "maxmemory"])
    r = daemon.post("/api/v1/templates/tensorboard/services", json={})
    assert_native_error(r, 409, "failed_precondition", ["tensorboard", "install"])
    r = daemon.post("/api/v1/templates/redis/services",
                    json={"name": "cache", "values": {"maxmemory": "64mb"}})
    assert r.status_code == 201, r.text
    r = daemon.post("/api/v1/templates/redis/services", json={"name": "cache"})
    assert_native_error(r, 409, "already_exists")
    assert_native_error(daemon.post("/api/v1/templates/redis/services", json={"name": "Bad"}),
                        400, "invalid_argument")
    after = {s["name"] for s in daemon.get("/api/v1/services").json()["services"]}
    assert after - before == {"cache"}, after - before
    daemon.delete("/api/v1/services/cache")
    templates = {t["name"]: t for t in daemon.get("/api/v1/templates").json()["templates"]}
    assert set(templates) == {"redis", "postgres", "jupyter", "tensorboard", "streamlit",
                              "vscode", "custom"}, templates.keys()
    assert templates["redis"]["installed"] and not templates["tensorboard"]["installed"]
    env = clean_env(BERTH_URL=daemon.url, BERTH_TOKEN=daemon.admin_token)
    out = subprocess.run([BERTH_BIN, "template", "ls"], capture_output=True, text=True, env=env)
    assert out.returncode == 0 and "tensorboard  no" in out.stdout, out.stdout + out.stderr
