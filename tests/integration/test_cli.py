"""The `berth` command-line client, run as a subprocess against a real daemon.

Each test gets its own HOME and XDG_CONFIG_HOME, so `berth login` writes into a temp dir and
never touches the developer's config; BERTH_URL / BERTH_TOKEN are removed from the environment
unless a test sets them on purpose.
"""
import json
import re
import select
import socket
import stat
import subprocess
import time

import pytest

from conftest import (BERTH_BIN, clean_env, create_project, create_token, inert_bundle,
                      push_bundle, unique)

DEFINITION_YAML = """\
container-tag: latest
memory-reservation: 100
memory-limit: 150
container-port: 80
environment:
  - {name: CONTEXT_ROOT, value: /default-web}
health-check: {rel_path: /, status_codes: "200-499", interval: 30}
scope: [interactive, jobs]
"""


class Cli:
    def __init__(self, tmp_path):
        self.home = tmp_path / "home"
        self.xdg = tmp_path / "xdg"
        self.home.mkdir()
        self.xdg.mkdir()
        self.config_path = self.xdg / "berth" / "config.json"

    def run(self, *args, env=None, stdin=None, xdg=True):
        e = clean_env(HOME=str(self.home))
        if xdg:
            e["XDG_CONFIG_HOME"] = str(self.xdg)
        else:
            e.pop("XDG_CONFIG_HOME", None)
        e.update(env or {})
        return subprocess.run([BERTH_BIN, *args], env=e, input=stdin, capture_output=True,
                              text=True, timeout=60)

    def ok(self, *args, **kw):
        p = self.run(*args, **kw)
        assert p.returncode == 0, f"berth {' '.join(args)} exited {p.returncode}:\n{p.stderr}"
        assert p.stderr == "", p.stderr
        return p.stdout

    def json(self, *args, **kw):
        return json.loads(self.ok(*args, "-o", "json", **kw))

    def fails(self, *args, **kw):
        """Runs a command that must fail the way the CLI reports API errors."""
        p = self.run(*args, **kw)
        assert p.returncode != 0, f"berth {' '.join(args)} succeeded:\n{p.stdout}"
        assert p.stdout == "", p.stdout
        # One plain line: "berth: <message>", no stack trace or raw JSON.
        assert p.stderr.startswith("berth: "), p.stderr
        assert p.stderr.count("\n") == 1, p.stderr
        assert "{" not in p.stderr, p.stderr
        return p.stderr


@pytest.fixture
def cli(tmp_path):
    return Cli(tmp_path)


@pytest.fixture
def logged_in(cli, daemon):
    """A CLI logged in with the admin token."""
    cli.ok("login", daemon.url, "--token", daemon.admin_token)
    return cli


def table(text):
    """Parses FormatTable output into a list of dicts keyed by the header."""
    lines = text.rstrip("\n").split("\n")
    header = re.split(r"\s{2,}", lines[0].strip())
    rows = []
    for line in lines[1:]:
        cells = re.split(r"\s{2,}", line.rstrip())
        cells += [""] * (len(header) - len(cells))
        rows.append(dict(zip(header, cells)))
    return header, rows


def closed_port():
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- help --------------------------------------------------------------------------------------


@pytest.mark.parametrize("args,words", [
    ([], ["serve", "login", "projects", "tokens", "services"]),
    (["services"], ["ls", "create", "show", "update", "rm"]),
    (["services", "update"], ["--file", "--output", "--project"]),
    (["tokens"], ["create", "ls", "revoke"]),
    (["tokens", "create"], ["--admin", "--description", "--project"]),
    (["projects"], ["ls", "create"]),
    (["login"], ["--token", "url"]),
    (["serve"], ["--data-dir", "--listen", "--threads", "--public-url", "--config"]),
])
def test_help(cli, args, words):
    out = cli.ok(*args, "--help")
    assert "Usage:" in out
    for w in words:
        assert w in out, (w, out)


def test_berth_alone_prints_the_help(cli):
    p = cli.run()
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("berth: a self-hosted service platform") and "deploy" in p.stdout


def test_a_mistyped_command_gets_the_nearest_one_and_the_list(cli):
    p = cli.run("depoly", "hello", "1.0.0", "hello/")
    assert p.returncode == 2 and p.stdout == ""
    lines = p.stderr.splitlines()
    assert lines[0] == "berth: unknown command 'depoly'; did you mean 'deploy'?", p.stderr
    assert lines[1].startswith("commands: ") and "deploy" in lines[1] and "services" in lines[1]
    assert lines[2] == "Run 'berth --help' for what each does."
    p = cli.run("services", "lss")
    assert p.returncode == 2
    assert p.stderr.startswith("berth services: unknown command 'lss'; did you mean 'ls'?\n")
    p = cli.run("frobnicate")
    assert p.returncode == 2 and p.stderr.startswith("berth: unknown command 'frobnicate'\n")


def test_a_group_alone_names_its_commands(cli):
    p = cli.run("services")
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.startswith("berth services: which command? one of: ls, create, show, "
                               "update, rm"), p.stderr
    assert "--help" in p.stderr  # followed by the group's help


def test_services_delete_is_rm(logged_in):
    name = unique("clisvc")
    logged_in.ok("services", "create", name)
    assert logged_in.ok("services", "delete", name) == f"Deleted service {name}\n"


def test_bad_output_format_is_refused(logged_in):
    p = logged_in.run("projects", "ls", "-o", "yaml")
    assert p.returncode != 0 and "yaml" in p.stderr


def test_missing_argument_is_refused(logged_in):
    p = logged_in.run("services", "create")
    assert p.returncode != 0 and "name" in p.stderr


# --- login -------------------------------------------------------------------------------------


def test_login_saves_url_and_token(cli, daemon):
    # A trailing slash is dropped, so saved URLs join cleanly with paths.
    out = cli.ok("login", daemon.url + "/", "--token", daemon.admin_token)
    admin_id = daemon.get("/api/v1/whoami").json()["token_id"]
    assert f"Logged in to {daemon.url} as {admin_id} (admin)" in out
    assert str(cli.config_path) in out
    saved = json.loads(cli.config_path.read_text())
    assert saved == {"url": daemon.url, "token": daemon.admin_token}
    # It holds a secret: only the owner may read it.
    assert stat.S_IMODE(cli.config_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(cli.config_path.parent.stat().st_mode) == 0o700
    # Later commands use it.
    assert "default" in cli.ok("projects", "ls")


def test_login_with_project_token(cli, daemon):
    project = create_project(daemon)
    tok = create_token(daemon, project=project)
    out = cli.ok("login", daemon.url, "--token", tok["token"])
    assert f"as {tok['id']} (project {project})" in out


def test_login_without_xdg_uses_home(cli, daemon):
    cli.ok("login", daemon.url, "--token", daemon.admin_token, xdg=False)
    path = cli.home / ".config" / "berth" / "config.json"
    assert json.loads(path.read_text())["token"] == daemon.admin_token
    assert not cli.config_path.exists()


@pytest.mark.parametrize("token", ["nonsense", "berth_" + "0" * 64])
def test_login_with_bad_token_saves_nothing(cli, daemon, token):
    err = cli.fails("login", daemon.url, "--token", token)
    assert "checking the token" in err and "not valid" in err
    assert not cli.config_path.exists()
    assert not (cli.xdg / "berth").exists() or not any((cli.xdg / "berth").iterdir())


def test_failed_login_keeps_previous_config(cli, daemon):
    cli.ok("login", daemon.url, "--token", daemon.admin_token)
    before = cli.config_path.read_text()
    cli.fails("login", daemon.url, "--token", "nonsense")
    assert cli.config_path.read_text() == before


def test_login_to_unreachable_daemon(cli):
    url = f"http://127.0.0.1:{closed_port()}"
    err = cli.fails("login", url, "--token", "whatever")
    assert "cannot reach berth" in err and url in err
    assert not cli.config_path.exists()


def test_login_with_bad_url(cli):
    err = cli.fails("login", "ftp://127.0.0.1:1", "--token", "x")
    assert "http://" in err


# --- projects ----------------------------------------------------------------------------------


def test_projects(logged_in):
    name = unique("cliproj")
    assert logged_in.ok("projects", "create", name) == f"Created project {name}\n"
    other = unique("cliproj")
    created = logged_in.json("projects", "create", other)
    assert created["name"] == other and "created_at" in created

    header, rows = table(logged_in.ok("projects", "ls"))
    assert header == ["NAME", "CREATED"]
    names = [r["NAME"] for r in rows]
    assert {"default", name, other} <= set(names)
    assert all(re.match(r"\d{4}-\d\d-\d\dT", r["CREATED"]) for r in rows)

    listed = logged_in.json("projects", "ls")
    assert [p["name"] for p in listed["projects"]] == names


def test_project_errors_show_server_message(logged_in, daemon):
    err = logged_in.fails("projects", "create", "Bad")
    assert "project name 'Bad' must begin with a lowercase letter" in err
    name = create_project(daemon)
    err = logged_in.fails("projects", "create", name)
    assert f"project '{name}' already exists" in err


def test_project_token_cannot_create_projects(cli, daemon):
    project = create_project(daemon)
    tok = create_token(daemon, project=project)
    cli.ok("login", daemon.url, "--token", tok["token"])
    err = cli.fails("projects", "create", unique("x"))
    assert "only an admin token can create projects" in err
    _, rows = table(cli.ok("projects", "ls"))
    assert [r["NAME"] for r in rows] == [project]


# --- tokens ------------------------------------------------------------------------------------


def test_tokens_create_ls_revoke(logged_in, daemon):
    project = create_project(daemon)
    out = logged_in.ok("tokens", "create", "-p", project, "-d", "build bot")
    m = re.search(r"Created token (tk_[0-9a-f]{12}) for project " + project, out)
    assert m, out
    token_id = m.group(1)
    secret = re.search(r"^(berth_[0-9a-f]{64})$", out, re.M).group(1)
    assert daemon.get("/api/v1/whoami", token=secret).json()["token_id"] == token_id

    created = logged_in.json("tokens", "create", "-p", project)
    assert created["project"] == project and created["token"].startswith("berth_")

    admin = logged_in.json("tokens", "create", "--admin", "-d", "spare admin")
    assert admin["admin"] is True and admin["project"] is None

    header, rows = table(logged_in.ok("tokens", "ls", "-p", project))
    assert header == ["ID", "PROJECT", "STATE", "CREATED", "DESCRIPTION"]
    by_id = {r["ID"]: r for r in rows}
    assert set(by_id) == {token_id, created["id"]}
    assert by_id[token_id]["PROJECT"] == project and by_id[token_id]["STATE"] == "active"
    assert by_id[token_id]["DESCRIPTION"] == "build bot"
    # Secrets are never listed.
    assert secret not in logged_in.ok("tokens", "ls")

    _, all_rows = table(logged_in.ok("tokens", "ls"))
    assert any(r["ID"] == admin["id"] and r["PROJECT"] == "(admin)" for r in all_rows)

    assert logged_in.ok("tokens", "revoke", token_id) == f"Revoked token {token_id}\n"
    revoked = logged_in.json("tokens", "revoke", created["id"])
    assert revoked["revoked"] is True and revoked["id"] == created["id"]
    _, rows = table(logged_in.ok("tokens", "ls", "-p", project))
    assert {r["STATE"] for r in rows} == {"revoked"}
    listed = logged_in.json("tokens", "ls", "-p", project)
    assert all(t["revoked"] for t in listed["tokens"]) and len(listed["tokens"]) == 2
    assert daemon.get("/api/v1/whoami", token=secret).status_code == 401


def test_token_errors_show_server_message(logged_in, daemon):
    err = logged_in.fails("tokens", "revoke", "tk_000000000000")
    assert "token 'tk_000000000000' does not exist" in err
    err = logged_in.fails("tokens", "create", "-p", "nosuchproject")
    assert "project 'nosuchproject' does not exist" in err


def test_last_admin_token_refusal_is_shown(cli, daemon_factory):
    d = daemon_factory()  # its own daemon, so that the bootstrap token is the only admin
    cli.ok("login", d.url, "--token", d.admin_token)
    me = d.get("/api/v1/whoami").json()["token_id"]
    err = cli.fails("tokens", "revoke", me)
    assert "refusing to revoke the last admin token" in err
    assert d.get("/api/v1/whoami").status_code == 200


def test_revoked_saved_token_says_log_in_again(cli, daemon):
    project = create_project(daemon)
    tok = create_token(daemon, project=project)
    cli.ok("login", daemon.url, "--token", tok["token"])
    daemon.delete(f"/api/v1/tokens/{tok['id']}")
    err = cli.fails("services", "ls")
    assert "revoked" in err and "berth login" in err


# --- services ----------------------------------------------------------------------------------


def test_services_lifecycle(logged_in, daemon, tmp_path):
    project = create_project(daemon)
    out = logged_in.ok("services", "ls", "-p", project)
    assert out == (f"No services in project {project}. Deploy one with 'berth deploy NAME "
                   f"VERSION DIR', or create one with 'berth services create NAME'.\n")
    assert logged_in.ok("ls", "-p", project) == out
    assert logged_in.json("services", "ls", "-p", project) == {"project": project,
                                                               "services": []}

    out = logged_in.ok("services", "create", "web", "-p", project)
    assert f"Created service web at {daemon.url}/{project}-web" in out
    assert f"berth services update web -p {project} -f definition.yaml" in out
    api = logged_in.json("services", "create", "api", "-p", project)
    assert api["name"] == "api" and api["revision"] == 0 and api["definition"] is None

    listed = logged_in.ok("services", "ls", "-p", project)
    assert logged_in.ok("ls", "-p", project) == listed  # one list, two names
    header, rows = table(listed)
    assert header == ["MAIN", "NAME", "VERSION", "STATUS", "RUNNING"]
    assert [(r["NAME"], r["VERSION"], r["STATUS"], r["RUNNING"]) for r in rows] == [
        ("api", "-", "no definition yet", "0/0 ready"),
        ("web", "-", "no definition yet", "0/0 ready")]

    out = logged_in.ok("services", "show", "web", "-p", project)
    assert "Name:      web" in out and f"Project:   {project}" in out
    assert "Revision:  0" in out and "Definition: none yet" in out

    # Definitions name pushed tags; these bundles have nothing to run.
    for tag in ("latest", "v2"):
        push_bundle(daemon, "web", tag, project=project, bundle=inert_bundle())
    deffile = tmp_path / "def.yaml"
    deffile.write_text(DEFINITION_YAML)
    out = logged_in.ok("services", "update", "web", "-f", str(deffile), "-p", project,
                       "--detach")
    assert out == "Service web is at revision 1\n"
    stored = daemon.get(f"/api/v1/services/web?project={project}").json()["definition"]
    assert stored["memory-limit"] == 150 and stored["container-tag"] == "latest"
    assert stored["environment"] == [{"name": "CONTEXT_ROOT", "value": "/default-web"}]
    assert stored["health-check"]["status_codes"] == "200-499"

    # JSON is YAML too; -o json prints the whole service.
    jsonfile = tmp_path / "def.json"
    jsonfile.write_text(json.dumps({"container-tag": "v2", "memory-reservation": 10,
                                    "memory-limit": 20, "container-port": 80}))
    v2 = logged_in.json("services", "update", "web", "-f", str(jsonfile), "-p", project,
                        "--detach")
    assert v2["revision"] == 2 and v2["definition"]["container-tag"] == "v2"

    # '-' reads the definition from stdin.
    out = logged_in.ok("services", "update", "web", "-f", "-", "-p", project, "--detach",
                       stdin=DEFINITION_YAML)
    assert out == "Service web is at revision 3\n"

    out = logged_in.ok("services", "show", "web", "-p", project)
    assert "Revision:  3" in out and '"memory-limit": 150' in out
    shown = logged_in.json("services", "show", "web", "-p", project)
    assert shown["revision"] == 3 and shown["definition"]["memory-reservation"] == 100

    assert logged_in.ok("services", "rm", "web", "-p", project) == "Deleted service web\n"
    deleted = logged_in.json("services", "rm", "api", "-p", project)
    assert deleted["deleted"]["name"] == "api"
    assert logged_in.json("services", "ls", "-p", project)["services"] == []


def test_services_update_waits_until_the_revision_is_live_and_says_why_when_it_cannot(
        logged_in, daemon, tmp_path):
    name = unique("clisvc")
    logged_in.ok("services", "create", name)
    good = tmp_path / "good.yaml"
    good.write_text('command: ["python3", "-m", "http.server", "--bind", "$(HOST)", "$(PORT)"]\n'
                    "container-port: 8000\n")
    p = logged_in.run("services", "update", name, "-f", str(good))
    assert p.returncode == 0, p.stderr
    assert p.stdout == f"Service {name} is at revision 1\n"
    assert f"revision 1 of {name} is live (1/1 instances ready)" in p.stderr, p.stderr
    shown = logged_in.json("services", "show", name)["status"]
    assert shown["active_revision"] == 1, shown  # live when the command returned, not later
    assert [i["state"] for i in shown["instances"]] == ["running"], shown
    # The one list says the same, with since when.
    row = [r for r in table(logged_in.ok("ls"))[1] if r["NAME"] == name][0]
    assert (row["MAIN"], row["VERSION"], row["STATUS"]) == ("", "rev 1", "running"), row
    assert re.fullmatch(r"Running \(since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\)", row["RUNNING"]), row
    listed = [s for s in logged_in.json("services", "ls")["services"] if s["name"] == name][0]
    assert (listed["status"], listed["ready"], listed["desired"]) == ("running", 1, 1), listed
    assert listed["since"] == shown["instances"][0]["started_at"], listed

    # A revision that keeps crashing: exit 1 with the supervisor's reason and what it logged;
    # the old revision keeps serving.
    crashing = tmp_path / "crashing.yaml"
    crashing.write_text('command: ["python3", "-c", "import sys; print(\'the model file is '
                        'missing\', flush=True); sys.exit(3)"]\ncontainer-port: 8000\n')
    p = logged_in.run("services", "update", name, "-f", str(crashing))
    assert p.returncode == 1 and p.stdout == "", (p.stdout, p.stderr)
    assert "berth: rolled back revision 2: its instances keep crashing" in p.stderr, p.stderr
    assert "revision 1 stays live" in p.stderr and "the model file is missing" in p.stderr
    assert "revision 2: 0/1 instances ready" in p.stderr, "no progress was shown"
    assert logged_in.json("services", "show", name)["status"]["active_revision"] == 1
    shown = logged_in.ok("services", "show", name)
    assert "Status:    running (revision 1 live, 1/1 instances ready; revision 2 was rolled back)" \
        in shown, shown

    # A tag never pushed: refused at once with the tags that exist; nothing is stored.
    missing = tmp_path / "missing.yaml"
    missing.write_text("container-tag: nope\n")
    p = logged_in.run("services", "update", name, "-f", str(missing))
    assert p.returncode == 1, p.stderr
    assert f"berth: container-tag: no bundle tagged 'nope' was pushed to '{name}' (none was " \
        "pushed yet)" in p.stderr, p.stderr
    assert f"berth push {name} DIR --tag nope" in p.stderr, p.stderr
    shown = logged_in.ok("services", "show", name)
    assert "Revision:  2" in shown and "Status:    running (revision 1 live" in shown, shown

    # A pushed bundle with nothing to run: the reason at once, not a wait.
    inert = tmp_path / "inert.yaml"
    inert.write_text("container-tag: inert\n")
    push_bundle(daemon, name, "inert", bundle=inert_bundle())
    p = logged_in.run("services", "update", name, "-f", str(inert))
    assert p.returncode == 1, p.stderr
    assert "berth: revision 3 cannot run: nothing to run" in p.stderr, p.stderr
    shown = logged_in.ok("services", "show", name)
    assert "Status:    running (revision 1 live" in shown and "; revision 3 cannot run:" in shown

    # Nothing ever ran: the status word says why.
    other = unique("clisvc")
    logged_in.ok("services", "create", other)
    assert "Status:    no definition yet (no revision live, 0/0" in logged_in.ok(
        "services", "show", other)
    push_bundle(daemon, other, "inert", bundle=inert_bundle())
    logged_in.run("services", "update", other, "-f", str(inert))
    shown = logged_in.ok("services", "show", other)
    assert "Status:    failed: revision 1 cannot run:" in shown, shown
    row = [r for r in table(logged_in.ok("services", "ls"))[1] if r["NAME"] == other][0]
    assert row["STATUS"].startswith("failed: revision 1 cannot run") and \
        row["RUNNING"] == "0/1 ready", row
    logged_in.ok("services", "rm", other)

    # --detach returns once stored, and says nothing else.
    out = logged_in.ok("services", "update", name, "-f", str(good), "--detach")
    assert out == f"Service {name} is at revision 4\n"
    logged_in.ok("services", "rm", name)


def test_yaml_number_in_env_value(logged_in, daemon, tmp_path):
    # Unquoted numbers are common in hand-written YAML env values; berth keeps numbers as
    # text, and a version like 1.10 must not come back in exponent notation.
    name = unique("clisvc")
    logged_in.ok("services", "create", name)
    push_bundle(daemon, name, "latest", bundle=inert_bundle())
    f = tmp_path / "env.yaml"
    f.write_text("container-tag: latest\nreplicas: 0\nenvironment:\n"
                 "  - {name: WORKERS, value: 4}\n  - {name: VERSION, value: 1.10}\n")
    env = logged_in.json("services", "update", name, "-f", str(f),
                         "--detach")["definition"]["environment"]
    logged_in.ok("services", "rm", name)
    assert env[0] == {"name": "WORKERS", "value": "4"}
    assert env[1]["value"] in ("1.10", "1.1"), env


def test_services_default_project_for_admin(logged_in, daemon):
    name = unique("clisvc")
    logged_in.ok("services", "create", name)
    assert daemon.get(f"/api/v1/services/{name}").json()["project"] == "default"
    assert name in [r["NAME"] for r in table(logged_in.ok("services", "ls"))[1]]
    logged_in.ok("services", "rm", name)


def test_service_errors_show_server_message(logged_in, daemon, tmp_path):
    err = logged_in.fails("services", "create", "Bad")
    assert "service name 'Bad' must begin with a lowercase letter" in err
    err = logged_in.fails("services", "create", "x" * 40)
    assert "at most 32" in err
    err = logged_in.fails("services", "show", "nosuchsvc")
    assert "service 'nosuchsvc' does not exist in project 'default'" in err
    err = logged_in.fails("services", "rm", "nosuchsvc")
    assert "does not exist" in err
    err = logged_in.fails("services", "ls", "-p", "nosuchproject")
    assert "project 'nosuchproject' does not exist" in err

    name = unique("clisvc")
    logged_in.ok("services", "create", name)
    err = logged_in.fails("services", "create", name)
    assert "already exists" in err

    bad = tmp_path / "bad.yaml"
    bad.write_text("container-tag: latest\nmemory-reservation: 200\nmemory-limit: 100\n")
    err = logged_in.fails("services", "update", name, "-f", str(bad))
    assert "memory-limit: must be >= memory-reservation (100 < 200)" in err
    bad.write_text("container-tag: latest\nreplicas: many\n")
    err = logged_in.fails("services", "update", name, "-f", str(bad))
    assert "replicas: must be an integer" in err
    assert daemon.get(f"/api/v1/services/{name}").json()["revision"] == 0
    logged_in.ok("services", "rm", name)


def test_update_with_unreadable_or_invalid_file(logged_in, daemon, tmp_path):
    name = unique("clisvc")
    logged_in.ok("services", "create", name)
    missing = tmp_path / "nope.yaml"
    err = logged_in.fails("services", "update", name, "-f", str(missing))
    assert "cannot read definition file" in err and str(missing) in err
    broken = tmp_path / "broken.yaml"
    broken.write_text("container-tag: [latest\n")
    err = logged_in.fails("services", "update", name, "-f", str(broken))
    assert str(broken) in err and "YAML" in err
    assert daemon.get(f"/api/v1/services/{name}").json()["revision"] == 0


def test_project_token_is_confined(cli, daemon):
    a, b = create_project(daemon), create_project(daemon)
    tok = create_token(daemon, project=a)
    cli.ok("login", daemon.url, "--token", tok["token"])
    cli.ok("services", "create", "mine")
    assert cli.json("services", "ls")["project"] == a
    err = cli.fails("services", "ls", "-p", b)
    assert f"cannot act on project '{b}'" in err
    err = cli.fails("tokens", "create", "--admin")
    assert "only an admin token can create admin tokens" in err


# --- environment overrides ---------------------------------------------------------------------


def test_env_overrides_saved_config(cli, daemon):
    project = create_project(daemon)
    tok = create_token(daemon, project=project)
    # The saved login is the admin token on a dead address.
    cli.ok("login", daemon.url, "--token", daemon.admin_token)
    saved = cli.config_path.read_text()
    cli.config_path.write_text(saved.replace(daemon.url, f"http://127.0.0.1:{closed_port()}"))

    err = cli.fails("services", "ls")
    assert "cannot reach berth" in err

    # BERTH_URL fixes the address; the saved admin token is still used.
    out = cli.json("services", "ls", env={"BERTH_URL": daemon.url})
    assert out["project"] == "default"
    # BERTH_TOKEN replaces the token: now the project's view.
    out = cli.json("services", "ls", env={"BERTH_URL": daemon.url, "BERTH_TOKEN": tok["token"]})
    assert out["project"] == project


def test_env_alone_without_login(cli, daemon):
    out = cli.json("projects", "ls", env={"BERTH_URL": daemon.url + "/",
                                          "BERTH_TOKEN": daemon.admin_token})
    assert "default" in [p["name"] for p in out["projects"]]
    assert not cli.config_path.exists()


def test_url_without_token_says_how_to_log_in(cli, daemon):
    err = cli.fails("services", "ls", env={"BERTH_URL": daemon.url})
    assert "no token given" in err and "berth login" in err


def test_corrupt_config_is_reported(cli, daemon):
    cli.config_path.parent.mkdir(parents=True)
    cli.config_path.write_text("{not json")
    err = cli.fails("services", "ls")
    assert str(cli.config_path) in err and "berth login" in err


def test_daemon_not_running(cli, daemon_factory):
    d = daemon_factory()
    cli.ok("login", d.url, "--token", d.admin_token)
    assert d.stop() == 0
    for args in (["services", "ls"], ["projects", "ls"], ["tokens", "ls"],
                 ["services", "create", "x"]):
        err = cli.fails(*args)
        assert f"cannot reach berth at {d.url}" in err
        assert "is 'berth serve' running there?" in err


def test_logs_follow_prints_each_line_as_it_comes(logged_in, tmp_path):
    """A quiet service's lines reach the terminal one by one, not once 8 KB have gathered."""
    name = unique("clisvc")
    logged_in.ok("services", "create", name)
    ticking = tmp_path / "tick.yaml"
    ticking.write_text(
        'command: ["python3", "-u", "-c", "import http.server, os, threading, time\\n'
        'def tick():\\n    for i in range(10000):\\n        print(\'tick\', i); time.sleep(0.3)\\n'
        'threading.Thread(target=tick, daemon=True).start()\\n'
        'http.server.ThreadingHTTPServer((os.environ[\'HOST\'], int(os.environ[\'PORT\'])), '
        'http.server.SimpleHTTPRequestHandler).serve_forever()"]\n'
        "container-port: 8000\n")
    p = logged_in.run("services", "update", name, "-f", str(ticking))
    assert p.returncode == 0, p.stderr
    env = clean_env(HOME=str(logged_in.home), XDG_CONFIG_HOME=str(logged_in.xdg))
    follow = subprocess.Popen([BERTH_BIN, "logs", name, "-f", "--tail", "1"], env=env,
                              stdout=subprocess.PIPE, text=True)
    try:
        lines = []
        deadline = time.monotonic() + 20  # buffered until 8 KB, 3 lines would take ~25 s
        while len(lines) < 3 and time.monotonic() < deadline:
            ready, _, _ = select.select([follow.stdout], [], [], 1)
            if ready:
                line = follow.stdout.readline()
                if " stdout tick " in line:  # not the health checks' access log on stderr
                    lines.append(line)
        assert len(lines) == 3, lines
    finally:
        follow.terminate()
        follow.wait(timeout=10)
        logged_in.ok("services", "rm", name)


def test_init_names_the_next_steps_after_its_folder(cli, tmp_path):
    p = cli.run("init", str(tmp_path / "myapp"), "--lang", "cpp")
    assert p.returncode == 0, p.stderr
    assert f"berth deploy myapp 1.0.0 {tmp_path / 'myapp'}" in p.stdout, p.stdout
    assert '"$BERTH_URL/default-myapp/hello"' in p.stdout, p.stdout
    # Its README names the service and berth's address, never the daemon's own port for the
    # local run.
    readme = (tmp_path / "myapp" / "README.md").read_text()
    assert "@SERVICE@" not in readme and "berth deploy myapp 1.0.0 ." in readme, readme
    assert "$BERTH_URL/default-myapp/hello" in readme and "PORT=8000" in readme, readme
    py = cli.run("init", str(tmp_path / "pyapp"))
    assert py.returncode == 0, py.stderr
    readme = (tmp_path / "pyapp" / "README.md").read_text()
    assert "@SERVICE@" not in readme and readme.startswith("# pyapp: a berth service"), readme
    assert "berth deploy pyapp 1.0.0 ." in readme and "berth logs pyapp" in readme, readme
    assert "$BERTH_URL/default-pyapp/hello" in readme and "8080/default" not in readme, readme


def test_a_deploy_that_cannot_run_says_why_at_once_and_a_failed_first_one_leaves_nothing(
        logged_in, tmp_path):
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "index.html").write_text("hi\n")  # no berth.yaml: nothing to run
    name = unique("clidep")
    p = logged_in.run("deploy", name, "1.0.0", str(folder), "--timeout", "100")
    assert p.returncode == 1 and p.stdout == "", p.stderr
    assert "berth: revision 1 cannot run: nothing to run" in p.stderr, p.stderr
    assert "berth.yaml" in p.stderr and "see why with" not in p.stderr, "it waited instead"
    logged_in.ok("services", "rm", name)  # the version was stored: fixed by the next deploy

    ghost = unique("clidep")
    p = logged_in.run("deploy", ghost, "1.0.0", str(tmp_path / "missing"))
    assert p.returncode == 1 and "missing" in p.stderr, p.stderr
    p = logged_in.run("services", "show", ghost)
    assert p.returncode != 0 and "does not exist" in p.stderr, "an empty service was left"


def test_push_takes_a_bundle_file_as_deploy_does(logged_in, tmp_path):
    import tarfile
    name = unique("clipush")
    logged_in.ok("services", "create", name)
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "berth.yaml").write_text('command: ["sleep", "1000"]\n')
    bundle = tmp_path / "bundle.tar.gz"
    with tarfile.open(bundle, "w:gz") as tf:
        tf.add(folder / "berth.yaml", arcname="berth.yaml")
    pushed = logged_in.json("push", name, str(bundle), "--tag", "v1")
    assert pushed["tag"] == "v1" and pushed["digest"].startswith("sha256:"), pushed
    p = logged_in.run("push", name, str(tmp_path / "nope"), "--tag", "v2")
    assert p.returncode != 0 and "nope" in p.stderr, p.stderr
    logged_in.ok("services", "rm", name)
