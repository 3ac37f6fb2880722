"""The dashboard as the daemon serves it: the page at /, its assets, login by cookie and the
rule that protects a cookie from other sites (a change needs X-Berth-Request). The browser
walk through the views is tests/browser/dashboard.mjs, run at the end of this module."""
import os
import re
import subprocess
from pathlib import Path

import requests

from conftest import (BERTH_BIN, HTTP_TIMEOUT, REPO, clean_env, create_token,
                      instance_processes, project_with_token, unique, wait_until)

ARTIFACTS = Path(os.environ.get("BERTH_TEST_ARTIFACTS", REPO / "build" / "test-artifacts"))


def login(d, token):
    s = requests.Session()
    r = s.post(d.url + "/_berth/login", data={"token": token, "next": "/"},
               headers={"Accept": "application/json"}, timeout=HTTP_TIMEOUT)
    return s, r


def test_the_page_and_its_assets_are_served_from_the_binary(daemon):
    r = requests.get(daemon.url + "/", timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/html")
    csp = r.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp, csp
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Cache-Control"] == "no-cache"
    assets = re.findall(r'(?:src|href)="(/_berth/ui/[^"]+)"', r.text)
    assert any(a.endswith(".js") for a in assets) and any(a.endswith(".css") for a in assets), r.text
    # Nothing the page loads comes from elsewhere.
    assert not re.search(r'(?:src|href)="(?:https?:)?//', r.text), r.text
    for a in assets:
        got = requests.get(daemon.url + a, timeout=HTTP_TIMEOUT)
        assert got.status_code == 200, a
        want = "text/javascript" if a.endswith(".js") else "text/css"
        assert got.headers["Content-Type"].startswith(want), (a, got.headers)
        assert "immutable" in got.headers["Cache-Control"]
    missing = requests.get(daemon.url + "/_berth/ui/nope.js", timeout=HTTP_TIMEOUT)
    assert missing.status_code == 404


def test_login_answers_json_sets_a_cookie_and_logout_clears_it(daemon):
    s, r = login(daemon, daemon.admin_token)
    assert r.status_code == 200, r.text
    who = r.json()
    assert who["admin"] is True and who["token_id"], who
    cookie = r.headers["Set-Cookie"]
    assert "berth_token=" in cookie and "HttpOnly" in cookie and "SameSite" in cookie, cookie
    assert s.get(daemon.url + "/api/v1/whoami", timeout=HTTP_TIMEOUT).json()["admin"] is True
    out = s.post(daemon.url + "/_berth/logout", timeout=HTTP_TIMEOUT)
    assert out.status_code in (200, 204, 303), out.text
    assert s.get(daemon.url + "/api/v1/whoami", timeout=HTTP_TIMEOUT).status_code == 401

    _, bad = login(daemon, "berth_nope")
    assert bad.status_code == 401
    assert "token" in bad.json()["error"]["message"], bad.text


def test_a_cookie_change_needs_the_dashboard_header_and_a_bearer_one_does_not(daemon):
    s, _ = login(daemon, daemon.admin_token)
    name = unique("dash")
    r = s.post(daemon.url + "/api/v1/services", json={"name": name}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 403, r.text
    assert "X-Berth-Request" in r.json()["error"]["message"], r.text
    assert daemon.get(f"/api/v1/services/{name}").status_code == 404  # nothing was created
    r = s.post(daemon.url + "/api/v1/services", json={"name": name},
               headers={"X-Berth-Request": "1"}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 201, r.text
    # A token in the header is not a cookie a browser sends by itself: no extra header needed.
    assert daemon.delete(f"/api/v1/services/{name}").status_code == 200
    # The cookie is the dashboard's: the dialects, whose clients send tokens, do not take it.
    assert s.get(daemon.url + "/api/v1/whoami", timeout=HTTP_TIMEOUT).status_code == 200
    assert s.get(daemon.url + "/orchest/api/runs", timeout=HTTP_TIMEOUT).status_code == 401


def test_a_project_token_sees_its_project_only(daemon):
    mine, token = project_with_token(daemon)
    other, _ = project_with_token(daemon)
    assert daemon.post(f"/api/v1/services?project={other}", json={"name": "secret"}).status_code == 201
    s, r = login(daemon, token)
    assert r.status_code == 200 and r.json()["project"] == mine, r.text
    own = s.get(daemon.url + "/api/v1/services", timeout=HTTP_TIMEOUT)
    assert own.status_code == 200 and own.json()["project"] == mine, own.text
    theirs = s.get(daemon.url + f"/api/v1/services?project={other}", timeout=HTTP_TIMEOUT)
    assert theirs.status_code in (403, 404), theirs.text
    projects = s.get(daemon.url + "/api/v1/projects", timeout=HTTP_TIMEOUT).json()["projects"]
    assert [p["name"] for p in projects] == [mine], projects


def test_the_mvi_story_in_chromium(fresh_daemon, tmp_path):
    """tests/browser/dashboard.mjs walks the views; screenshots go to the test artifacts."""
    hello = tmp_path / "hello"
    p = subprocess.run([BERTH_BIN, "init", str(hello)], capture_output=True, text=True,
                       timeout=60, env=clean_env(BERTH_URL=fresh_daemon.url,
                                                 BERTH_TOKEN=fresh_daemon.admin_token))
    assert p.returncode == 0, p.stdout + p.stderr
    team = fresh_daemon.post("/api/v1/projects", json={"name": "team"})
    assert team.status_code == 201, team.text
    assert fresh_daemon.post("/api/v1/services?project=team", json={"name": "site"}).status_code == 201
    team_token = create_token(fresh_daemon, project="team")["token"]
    shots = ARTIFACTS / "dashboard"
    try:
        p = subprocess.run(["node", str(REPO / "tests/browser/dashboard.mjs"), fresh_daemon.url,
                            fresh_daemon.admin_token, str(hello), str(shots),
                            str(fresh_daemon.data_dir / "projects/default/project"), team_token],
                           capture_output=True, text=True, timeout=540)
    finally:
        # What the walk started (hello, redis, the ping recipe) stops through the API.
        d = fresh_daemon
        d.post("/api/v1/recipes/ping/stop")
        for project in ("default", "team"):
            for s in d.get(f"/api/v1/services?project={project}").json()["services"]:
                d.delete(f"/api/v1/services/{s['name']}?project={project}")
        wait_until(lambda: not instance_processes(d.data_dir), 30, "every instance stopped")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "the dashboard walk passed" in p.stdout, p.stdout
    for view in ("services", "service-overview", "notifications", "service-logs", "templates",
                 "pipeline", "pipeline-run", "recipe"):
        shot = next(shots.glob(f"*-{view}-dark.png"))
        assert shot.stat().st_size > 10_000, f"the {view} screenshot is empty"
    assert next(shots.glob("*-vscode.png")).stat().st_size > 10_000, "the VS Code shot is empty"
