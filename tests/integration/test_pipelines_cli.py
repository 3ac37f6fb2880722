"""The CLI's pipeline commands (`berth pipelines`, `berth run`, `berth runs`) as subprocesses
against a real daemon whose steps are real processes.

The CLI finds the daemon through BERTH_URL / BERTH_TOKEN (the admin token, which may name any
project directory); HOME and XDG_CONFIG_HOME point into the test's tmp_path so that no saved
login of the developer's is read.
"""
import json
import os
import pty
import re
import select
import signal
import subprocess
import textwrap
import time

import pytest

from conftest import BERTH_BIN, clean_env, wait_until

ENDED = {"SUCCESS", "FAILURE", "ABORTED"}

ETL_YAML = """\
name: etl
steps:
  - {name: a, command: "echo hello-a"}
  - {name: b, command: "echo b; exit 3", after: [a]}
  - {name: c, command: "echo c", after: [b]}
"""

NAP_YAML = """\
name: nap
steps:
  - {name: nap, command: "sleep 30"}
  - {name: after, command: "echo never", after: [nap]}
"""


class Cli:
    def __init__(self, daemon, tmp_path):
        self.daemon = daemon
        home = tmp_path / "home"
        home.mkdir(exist_ok=True)
        self.env = clean_env(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"),
                             BERTH_URL=daemon.url, BERTH_TOKEN=daemon.admin_token)

    def run(self, *args):
        return subprocess.run([BERTH_BIN, *map(str, args)], env=self.env, capture_output=True,
                              text=True, timeout=60)

    def ok(self, *args):
        p = self.run(*args)
        assert p.returncode == 0, f"berth {args} exited {p.returncode}:\n{p.stdout}{p.stderr}"
        assert p.stderr == "", p.stderr
        return p.stdout

    def json(self, *args):
        return json.loads(self.ok(*args, "-o", "json"))

    def fails(self, *args):
        """A command that must fail as the CLI reports errors: one plain line on stderr."""
        p = self.run(*args)
        assert p.returncode != 0, f"berth {args} succeeded:\n{p.stdout}"
        assert p.stdout == "", p.stdout
        assert p.stderr.startswith("berth: ") and p.stderr.count("\n") == 1, p.stderr
        assert "{" not in p.stderr, p.stderr
        return p.stderr


@pytest.fixture
def cli(daemon, tmp_path):
    c = Cli(daemon, tmp_path)
    yield c
    # Whatever a failed assertion left running is cancelled through the API.
    for r in daemon.get("/api/v1/runs?limit=1000").json()["runs"]:
        if r["status"] not in ENDED:
            daemon.post(f"/api/v1/runs/{r['uuid']}/cancel")


@pytest.fixture
def project_dir(tmp_path):
    p = tmp_path / "project"
    p.mkdir()
    return p


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def table(text):
    """FormatTable output as a list of dicts keyed by the header."""
    lines = text.rstrip("\n").split("\n")
    header = re.split(r"\s{2,}", lines[0].strip())
    return [dict(zip(header, re.split(r"\s{2,}", line.rstrip()))) for line in lines[1:]]


def run_id(stdout):
    """The run's id from the first line `berth run` prints: "Run ID (etl, full): 3 steps"."""
    m = re.match(r"Run ([0-9a-f-]{36}) \(", stdout)
    assert m, stdout
    return m.group(1)


def api_run(daemon, rid):
    r = daemon.get(f"/api/v1/runs/{rid}")
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize("args,words", [
    (["pipelines"], ["add", "ls", "show", "rm", "Examples", "after:"]),
    (["pipelines", "add"], ["--project-dir", "--output", "--project", "Examples"]),
    (["run"], ["--steps", "--incoming", "--include-selected", "--project-dir", "--detach",
               "--output", "Ctrl-C", "Examples"]),
    (["runs"], ["ls", "show", "logs", "cancel", "rm", "Examples"]),
    (["runs", "ls"], ["--pipeline", "--limit", "--output"]),
    (["runs", "logs"], ["--follow", "--tail", "Examples"]),
    (["jobs"], ["create", "ls", "show", "pause", "resume", "cancel", "Examples"]),
    (["jobs", "create"], ["--pipeline", "--schedule", "--time-zone", "--at", "--param",
                          "--params-file", "--grid", "--project-dir", "--output", "Examples"]),
    (["jobs", "cancel"], ["--output", "Example"]),
])
def test_help(cli, args, words):
    out = cli.ok(*args, "--help")
    assert "Usage:" in out
    for w in words:
        assert w in out, (w, out)


def test_add_run_show_logs_and_remove_a_pipeline(cli, daemon, tmp_path, project_dir):
    etl = write(tmp_path, "etl.yaml", ETL_YAML)
    assert cli.ok("pipelines", "add", etl, "--project-dir", project_dir).startswith(
        "pipeline etl added (3 steps)\n")
    assert cli.ok("pipelines", "add", etl, "--project-dir", project_dir).startswith(
        "pipeline etl replaced (3 steps)\n")
    listed = {p["name"]: p for p in cli.json("pipelines", "ls")["pipelines"]}
    assert listed["etl"]["project_dir"] == str(project_dir)
    rows = {r["NAME"]: r for r in table(cli.ok("pipelines", "ls"))}
    assert rows["etl"]["STEPS"] == "3" and rows["etl"]["DIRECTORY"] == str(project_dir)
    shown = cli.ok("pipelines", "show", "etl")
    steps = {r["STEP"]: r for r in table(shown.split("Steps:\n")[1].split("No runs yet")[0])}
    assert steps["a"] == {"STEP": "a", "KIND": "command", "RUNS": "echo hello-a", "AFTER": "-"}
    assert steps["b"]["AFTER"] == "a" and steps["c"]["AFTER"] == "b"
    assert "No runs yet: berth run etl" in shown

    # A full run: b fails, c never starts; the output says so and shows b's last log lines.
    p = cli.run("run", "etl")
    assert p.returncode == 1, p.stdout + p.stderr
    assert p.stderr == ""
    failed = run_id(p.stdout)
    lines = p.stdout.splitlines()
    for expected in ("a STARTED", "b STARTED", "c ABORTED"):
        assert expected in lines, p.stdout
    assert any(re.fullmatch(r"a SUCCESS \d+ms", l) for l in lines), p.stdout
    assert any(re.fullmatch(r"b FAILURE \d+ms", l) for l in lines), p.stdout
    assert lines.index("a STARTED") < lines.index("b STARTED") < lines.index("c ABORTED")
    assert f"Run {failed} FAILURE in " in p.stdout and "step b failed" in p.stdout
    assert "Step b failed: exited with code 3" in p.stdout
    assert "  stdout b" in lines, p.stdout
    assert f"berth runs logs {failed} b" in p.stdout
    assert api_run(daemon, failed)["status"] == "FAILURE"

    p = cli.run("run", "etl", "--steps", "a")
    assert p.returncode == 0, p.stdout + p.stderr
    ok = run_id(p.stdout)
    # Only step a ran: no line of step c (the run's id may well contain "c ").
    assert f"Run {ok} SUCCESS in " in p.stdout
    assert not any(line.startswith("c ") for line in p.stdout.splitlines()), p.stdout
    assert api_run(daemon, ok)["run_type"] == "selection"

    runs = cli.json("runs", "ls", "--pipeline", "etl")["runs"]
    assert [r["uuid"] for r in runs] == [ok, failed]
    assert [r["status"] for r in runs] == ["SUCCESS", "FAILURE"]
    assert [[s["step"] for s in r["steps"]] for r in runs] == [["a"], ["a", "b", "c"]]
    rows = {r["RUN"]: r for r in table(cli.ok("runs", "ls", "--pipeline", "etl"))}
    assert rows[failed]["PIPELINE"] == "etl" and rows[failed]["TYPE"] == "full"
    assert rows[failed]["STATUS"] == "FAILURE" and rows[failed]["STEPS"] == "1/3 done"
    assert rows[ok]["STEPS"] == "1/1 done" and rows[ok]["TYPE"] == "selection"
    assert re.fullmatch(r"\d+ms|\d+\.\ds", rows[ok]["DURATION"]), rows[ok]
    assert len(cli.json("runs", "ls", "--pipeline", "etl", "--limit", "1")["runs"]) == 1
    assert "(the 1 latest; --limit N for more)" in cli.ok("runs", "ls", "--pipeline", "etl",
                                                          "-n", "1")

    shown = cli.ok("runs", "show", failed)
    assert f"Run:       {failed}\n" in shown
    assert "Status:    FAILURE — step b failed\n" in shown
    assert f"Directory: {project_dir}\n" in shown
    steps = {r["STEP"]: r for r in table(shown.split("Steps:\n")[1].split("See why")[0])}
    assert steps["a"]["STATUS"] == "SUCCESS" and steps["a"]["EXIT"] == "0"
    assert steps["b"]["STATUS"] == "FAILURE" and steps["b"]["EXIT"] == "3"
    assert steps["b"]["MESSAGE"] == "exited with code 3"
    assert steps["c"]["STATUS"] == "ABORTED" and steps["c"]["DURATION"] == "-"
    assert f"berth runs logs {failed} b" in shown
    assert cli.json("runs", "show", failed) == api_run(daemon, failed)

    logs = cli.ok("runs", "logs", failed, "a")
    assert re.search(r"^\S+Z stdout hello-a$", logs, re.M), logs
    assert [l["message"] for l in cli.json("runs", "logs", failed, "b")["lines"]] == [
        "b", "exited with code 3"]
    # -f on an ended step prints what it wrote and returns; -o json keeps the NDJSON lines.
    assert "stdout b" in cli.ok("runs", "logs", failed, "b", "-f")
    followed = [json.loads(l) for l in cli.ok("runs", "logs", failed, "b", "-f", "-o", "json")
                .splitlines()]
    assert [l["message"] for l in followed] == ["b", "exited with code 3"]
    assert len(cli.ok("runs", "logs", failed, "b", "--tail", "1").splitlines()) == 1
    assert "its steps are: a, b, c" in cli.fails("runs", "logs", failed, "zz")

    shown = cli.ok("pipelines", "show", "etl")
    assert f"Recent runs:\n" in shown and ok in shown and failed in shown

    assert cli.ok("pipelines", "rm", "etl") == "Deleted pipeline etl\n"
    assert "etl" not in {p["name"] for p in cli.json("pipelines", "ls")["pipelines"]}
    assert "no pipeline 'etl'" in cli.fails("pipelines", "rm", "etl")
    # The runs stay until removed.
    assert cli.json("runs", "show", failed)["status"] == "FAILURE"
    assert cli.ok("runs", "rm", failed) == f"Deleted run {failed} and its logs\n"
    assert "there is no run" in cli.fails("runs", "show", failed)


def test_detach_cancel_and_rm_of_a_running_run(cli, daemon, tmp_path, project_dir):
    cli.ok("pipelines", "add", write(tmp_path, "nap.yaml", NAP_YAML), "--project-dir",
           project_dir)
    out = cli.ok("run", "nap", "--detach")
    rid = out.strip()
    assert out == rid + "\n" and re.fullmatch(r"[0-9a-f-]{36}", rid), out
    wait_until(lambda: api_run(daemon, rid)["status"] == "STARTED", 20, "the run to start")
    assert "cancel it first" in cli.fails("runs", "rm", rid)
    shown = cli.ok("runs", "show", rid)
    assert "Status:    STARTED\n" in shown and "Finished:  -\n" in shown

    assert cli.ok("runs", "cancel", rid) == f"Cancelled run {rid} (ABORTED)\n"
    run = api_run(daemon, rid)
    assert run["status"] == "ABORTED"
    assert {s["status"] for s in run["steps"]} == {"ABORTED"}
    err = cli.fails("runs", "cancel", rid)
    assert "has ended already (ABORTED); there is nothing to cancel" in err, err
    assert cli.ok("runs", "rm", rid) == f"Deleted run {rid} and its logs\n"
    assert "'berth runs ls' lists the runs" in cli.fails("runs", "cancel", rid)

    # -o json with --detach: the run as the API answered it.
    started = cli.json("run", "nap", "--detach")
    assert started["pipeline"] == "nap" and started["status"] in ("PENDING", "STARTED")
    assert [s["step"] for s in started["steps"]] == ["nap", "after"]
    assert cli.json("runs", "cancel", started["uuid"])["status"] == "ABORTED"


def test_ctrl_c_stops_watching_and_the_run_goes_on(cli, daemon, tmp_path, project_dir):
    cli.ok("pipelines", "add", write(tmp_path, "nap.yaml", NAP_YAML.replace("nap\n", "nap2\n", 1)),
           "--project-dir", project_dir)
    proc = subprocess.Popen([BERTH_BIN, "run", "nap2"], env=cli.env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        def started():
            runs = daemon.get("/api/v1/runs?pipeline=nap2").json()["runs"]
            return runs and runs[0]["status"] == "STARTED" and runs[0]["uuid"]
        rid = wait_until(started, 20, "the run to start")
        time.sleep(0.3)  # a poll or two of the watcher
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, (out, err)
    assert run_id(out) == rid and "nap STARTED" in out
    assert f"Stopped watching; run {rid} goes on." in err
    assert f"berth runs show {rid}" in err and f"berth runs cancel {rid}" in err
    assert api_run(daemon, rid)["status"] == "STARTED"
    cli.ok("runs", "cancel", rid)


def test_a_terminal_gets_a_table_redrawn_in_place(cli, tmp_path, project_dir):
    pipeline = textwrap.dedent("""\
        name: tty
        steps:
          - {name: first, command: "sleep 0.6"}
          - {name: second, command: "echo done", after: [first]}
        """)
    cli.ok("pipelines", "add", write(tmp_path, "tty.yaml", pipeline), "--project-dir",
           project_dir)
    master, slave = pty.openpty()
    proc = subprocess.Popen([BERTH_BIN, "run", "tty"], env=cli.env, stdin=subprocess.DEVNULL,
                            stdout=slave, stderr=slave)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if not ready:
            if proc.poll() is not None:
                break
            continue
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    assert proc.wait(timeout=10) == 0, out
    text = out.decode()
    assert "\x1b[" in text, text  # moved up over the previous table at least once
    final = text.rsplit("\x1b[J", 1)[-1]
    assert re.search(r"^STEP\s+STATUS\s+DURATION", final, re.M), final
    assert re.search(r"^first\s+SUCCESS\s+\d", final, re.M), final
    assert re.search(r"^second\s+SUCCESS\s+\d", final, re.M), final
    assert re.search(r"Run \S+ SUCCESS in ", final), final


def test_a_file_runs_once_without_being_stored(cli, daemon, tmp_path, project_dir):
    adhoc = write(tmp_path, "adhoc.yaml", textwrap.dedent("""\
        name: adhoc
        steps:
          - {name: one, command: "echo one > one.txt"}
          - {name: two, command: "cat one.txt", after: [one]}
        """))
    p = cli.run("run", adhoc, "--project-dir", project_dir)
    assert p.returncode == 0, p.stdout + p.stderr
    rid = run_id(p.stdout)
    assert (project_dir / "one.txt").read_text() == "one\n"
    assert "adhoc" not in {x["name"] for x in cli.json("pipelines", "ls")["pipelines"]}
    assert "stdout one" in cli.ok("runs", "logs", rid, "two")

    # Orchest's form: steps keyed by uuid; --steps takes their titles too.
    u1, u2 = "0c6e1f6a-1111-4000-8000-000000000001", "0c6e1f6a-2222-4000-8000-000000000002"
    orchest = {"name": "orch-cli", "uuid": "pl-1", "settings": {}, "parameters": {}, "steps": {
        u1: {"uuid": u1, "title": "extract", "file_path": "extract.sh",
             "incoming_connections": [], "parameters": {}, "environment": ""},
        u2: {"uuid": u2, "title": "load", "file_path": "extract.sh",
             "incoming_connections": [u1], "parameters": {}, "environment": ""}}}
    (project_dir / "extract.sh").write_text("echo from-sh\n")
    path = write(tmp_path, "pipeline.orchest", json.dumps(orchest))
    run = cli.json("run", path, "--steps", "load", "--incoming", "--project-dir", project_dir)
    assert run["status"] == "SUCCESS" and run["run_type"] == "incoming"
    assert [s["step"] for s in run["steps"]] == [u1]
    run = cli.json("run", path, "--steps", "load", "--incoming", "--include-selected",
                   "--project-dir", project_dir)
    assert [s["step"] for s in run["steps"]] == [u1, u2]
    p = cli.run("run", path, "--steps", "load", "--project-dir", project_dir)
    assert p.returncode == 0 and "load STARTED" in p.stdout, p.stdout + p.stderr


def test_errors_say_what_was_wrong_and_how_to_fix_it(cli, tmp_path, project_dir):
    err = cli.fails("run", "no-such-pipeline")
    assert "no pipeline 'no-such-pipeline'" in err and "berth pipelines add" in err, err
    assert "berth pipelines add" in cli.fails("run", "no-such-pipeline", "--steps", "a")
    assert "berth pipelines add" in cli.fails("pipelines", "show", "no-such-pipeline")
    assert "--steps" in cli.fails("run", "x", "--incoming")
    assert "--incoming" in cli.fails("run", "x", "--steps", "a", "--include-selected")
    assert "'berth runs ls' lists the runs" in cli.fails("runs", "show", "nope")

    cli.ok("pipelines", "add", write(tmp_path, "e.yaml", ETL_YAML.replace("etl", "etl-err")),
           "--project-dir", project_dir)
    err = cli.fails("run", "etl-err", "--steps", "zz")
    assert '"zz"' in err, err
    bad = write(tmp_path, "bad.yaml", "name: bad\nsteps:\n  - {name: a, command: x, after: [q]}\n")
    err = cli.fails("pipelines", "add", bad)
    assert "bad.yaml" in err and "q" in err, err
    err = cli.fails("pipelines", "add", write(tmp_path, "broken.json", '{"name": "x",'))
    assert "broken.json is not valid JSON" in err, err
    p = cli.run("pipelines", "add", tmp_path / "missing.yaml")
    assert p.returncode != 0 and "missing.yaml" in p.stderr


def job_id(stdout):
    """The job's id from the first line `berth jobs create` prints: "Job ID (NAME) created: ..."."""
    m = re.match(r"Job ([0-9a-f-]{36}) \(", stdout)
    assert m, stdout
    return m.group(1)


def wait_cli_job(cli, jid, timeout=60):
    def ended():
        j = cli.json("jobs", "show", jid)
        return j if j["status"] in ENDED else None
    return wait_until(ended, timeout, f"job {jid} to end")


def test_a_one_off_job_with_a_grid_runs_once_per_value(cli, tmp_path, project_dir):
    (project_dir / "show.py").write_text(
        "import orchest\nprint('rate', orchest.get_step_param('rate'))\n")
    cli.ok("pipelines", "add", write(tmp_path, "sweep.yaml", textwrap.dedent("""\
        name: cli-sweep
        steps:
          - {name: show, file: show.py, parameters: {rate: 0}}
        """)), "--project-dir", project_dir)
    out = cli.ok("jobs", "create", "sweep", "--pipeline", "cli-sweep", "--grid", "show.rate=1,2")
    jid = job_id(out)
    assert re.search(r"created: (PENDING|STARTED), next run ", out), out
    assert f"berth jobs show {jid}" in out
    done = wait_cli_job(cli, jid)
    assert done["status"] == "SUCCESS", done
    assert done["runs"] == {"total": 2, "succeeded": 2, "failed": 0, "running": 0}
    assert sorted(done["parameters"], key=json.dumps) == [{"show": {"rate": 1}},
                                                           {"show": {"rate": 2}}]
    outs = sorted(cli.json("runs", "logs", r["uuid"], "show")["lines"][0]["message"]
                  for r in done["recent_runs"])
    assert outs == ["rate 1", "rate 2"]

    rows = {r["JOB"]: r for r in table(cli.ok("jobs", "ls"))}
    assert rows[jid]["NAME"] == "sweep" and rows[jid]["PIPELINE"] == "cli-sweep"
    assert rows[jid]["SCHEDULE"] == "once" and rows[jid]["STATUS"] == "SUCCESS"
    assert rows[jid]["RUNS"] == "2 ok / 0 failed / 0 running"
    assert jid in [j["uuid"] for j in cli.json("jobs", "ls")["jobs"]]
    shown = cli.ok("jobs", "show", jid)
    assert f"Job:        {jid}\n" in shown and "Status:     SUCCESS" in shown
    assert "Parameters: 2 sets" in shown and "Recent runs:\n" in shown
    for r in done["recent_runs"]:
        assert r["uuid"] in shown

    # Several --param make one set, values as JSON when they parse; --params-file a list.
    job = cli.json("jobs", "create", "one", "--pipeline", "cli-sweep", "--param", "show.rate=5",
                   "--param", "show.tag=fast", "--param", 'show.list=[1,"a"]')
    assert job["parameters"] == [{"show": {"rate": 5, "tag": "fast", "list": [1, "a"]}}]
    sets = write(tmp_path, "sets.json", json.dumps([{"show": {"rate": 7}}, {"show": {"rate": 8}}]))
    job2 = cli.json("jobs", "create", "sets", "--pipeline", "cli-sweep", "--params-file", sets)
    assert job2["parameters"] == [{"show": {"rate": 7}}, {"show": {"rate": 8}}]
    assert wait_cli_job(cli, job["uuid"])["status"] == "SUCCESS"
    assert wait_cli_job(cli, job2["uuid"])["runs"]["succeeded"] == 2
    assert "do not go together" in cli.fails("jobs", "create", "x", "--pipeline", "cli-sweep",
                                             "--param", "show.rate=1", "--grid", "show.rate=1,2")
    assert "STEP.KEY=VALUE" in cli.fails("jobs", "create", "x", "--pipeline", "cli-sweep",
                                         "--param", "rate=1")


def test_a_cron_job_is_paused_resumed_and_cancelled(cli, tmp_path, project_dir):
    cli.ok("pipelines", "add", write(tmp_path, "e.yaml", ETL_YAML.replace("etl", "etl-cron")),
           "--project-dir", project_dir)
    out = cli.ok("jobs", "create", "nightly", "--pipeline", "etl-cron", "--schedule", "0 3 * * *",
                 "--time-zone", "Europe/Amsterdam")
    jid = job_id(out)
    job = cli.json("jobs", "show", jid)
    assert job["schedule"] == "0 3 * * *" and job["time_zone"] == "Europe/Amsterdam"
    assert job["next_run"] and job["next_run"] in out
    assert job["runs"]["total"] == 0 and job["recent_runs"] == []
    rows = {r["JOB"]: r for r in table(cli.ok("jobs", "ls"))}
    assert rows[jid]["SCHEDULE"] == "0 3 * * * (Europe/Amsterdam)"
    assert rows[jid]["NEXT RUN"] == job["next_run"]
    assert rows[jid]["RUNS"] == "0 ok / 0 failed / 0 running"
    assert "No runs yet." in cli.ok("jobs", "show", jid)

    assert cli.ok("jobs", "pause", jid).startswith(f"Paused job {jid} (PAUSED)")
    assert cli.json("jobs", "show", jid)["status"] == "PAUSED"
    assert "nothing to resume" not in cli.ok("jobs", "resume", jid)
    assert cli.json("jobs", "show", jid)["status"] in ("PENDING", "STARTED")
    assert "nothing to resume" in cli.fails("jobs", "resume", jid)
    cancelled = cli.json("jobs", "cancel", jid)
    assert cancelled["status"] == "ABORTED"
    err = cli.fails("jobs", "cancel", jid)
    assert "has ended already (ABORTED); there is nothing to cancel" in err, err
    assert "can be paused" in cli.fails("jobs", "pause", jid)
    assert "'berth jobs ls' lists the jobs" in cli.fails("jobs", "show", "no-such-job")

    err = cli.fails("jobs", "create", "bad", "--pipeline", "etl-cron", "--schedule", "99 * * * *")
    assert "--schedule '99 * * * *'" in err and "minute" in err, err
    err = cli.fails("jobs", "create", "bad", "--pipeline", "etl-cron", "--schedule", "0 3 * * *",
                    "--time-zone", "Mars/Base")
    assert "Mars/Base" in err, err
    assert "time" in cli.fails("jobs", "create", "bad", "--pipeline", "etl-cron", "--at",
                               "tomorrow")
    err = cli.fails("jobs", "create", "bad", "--pipeline", "no-such-pipeline")
    assert "no pipeline" in err and "berth pipelines add" in err, err
    assert "bad" not in [j["name"] for j in cli.json("jobs", "ls")["jobs"]]
