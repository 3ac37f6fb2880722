"""Pipelines with real processes (seed 004): every run type on a diamond and a chain, failure
and ABORTED descendants, cancel killing a step's whole tree, .py / .sh / .ipynb steps, frozen
parameters, data passing with `import orchest`, a daemon kill -9 mid-run, the orchest-api
dialect's payloads and answers, and validation errors that leave nothing behind.
"""
import json
import os
import signal
import textwrap
import time
from pathlib import Path

import pytest

from conftest import pid_alive, wait_until

ENDED = {"SUCCESS", "FAILURE", "ABORTED"}


def step(name, command="true", after=()):
    return {"name": name, "command": command, "after": list(after)}


def diamond(project_dir, name="diamond"):
    """a -> b, a -> c, b -> d, c -> d; each step appends its name to trace.txt."""
    log = f"echo {{}} >> {project_dir}/trace.txt"
    return {"name": name, "steps": [
        step("a", log.format("a")),
        step("b", log.format("b"), ["a"]),
        step("c", log.format("c"), ["a"]),
        step("d", log.format("d"), ["b", "c"]),
    ]}


def add_pipeline(d, pipeline, project_dir, fmt="json"):
    body = json.dumps(pipeline) if fmt == "json" else pipeline
    r = d.post(f"/api/v1/pipelines?project_dir={project_dir}", data=body)
    assert r.status_code in (200, 201), r.text
    return r.json()


def start(d, name, **body):
    r = d.post(f"/api/v1/pipelines/{name}/runs", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def wait_run(d, run_id, timeout=60):
    def ended():
        r = d.get(f"/api/v1/runs/{run_id}")
        assert r.status_code == 200, r.text
        return r.json() if r.json()["status"] in ENDED else None
    return wait_until(ended, timeout, f"run {run_id} to end")


def statuses(run):
    return {s["step"]: s["status"] for s in run["steps"]}


def logs(d, run_id, step_name):
    """What the step's program wrote (berth's own lines, such as how it exited, left out)."""
    r = d.get(f"/api/v1/runs/{run_id}/steps/{step_name}/logs?tail=0")
    assert r.status_code == 200, r.text
    return [l["message"] for l in r.json()["lines"] if l["stream"] != "berth"]


@pytest.fixture
def project_dir(tmp_path):
    p = tmp_path / "project"
    p.mkdir()
    return p


def test_a_full_run_of_a_diamond_runs_every_step_in_order(daemon, project_dir):
    add_pipeline(daemon, diamond(project_dir, "diamond-full"), project_dir)
    run = start(daemon, "diamond-full")
    assert run["status"] in ("PENDING", "STARTED")
    assert [s["step"] for s in run["steps"]] == ["a", "b", "c", "d"]
    done = wait_run(daemon, run["uuid"])
    assert done["status"] == "SUCCESS", done
    assert set(statuses(done).values()) == {"SUCCESS"}
    trace = (project_dir / "trace.txt").read_text().split()
    assert trace[0] == "a" and trace[-1] == "d" and sorted(trace[1:3]) == ["b", "c"]
    for s in done["steps"]:
        assert s["started_at"] and s["finished_at"] and s["exit_code"] == 0
        assert s["started_at"].endswith("Z")


def test_selection_and_incoming_runs_on_a_diamond_and_a_chain(daemon, project_dir):
    add_pipeline(daemon, diamond(project_dir, "diamond-sel"), project_dir)
    sel = wait_run(daemon, start(daemon, "diamond-sel", type="selection", steps=["b", "d"])["uuid"])
    assert [s["step"] for s in sel["steps"]] == ["b", "d"]
    assert sel["status"] == "SUCCESS"
    # Orchest's "run incoming steps": the ancestors, without the selected step.
    inc = wait_run(daemon, start(daemon, "diamond-sel", type="incoming", steps=["d"])["uuid"])
    assert [s["step"] for s in inc["steps"]] == ["a", "b", "c"]
    both = wait_run(daemon, start(daemon, "diamond-sel", type="incoming", steps=["c"],
                                  include_selected=True)["uuid"])
    assert [s["step"] for s in both["steps"]] == ["a", "c"]

    chain = {"name": "chain-sel", "steps": [step("x", "echo x"), step("y", "echo y", ["x"]),
                                            step("z", "echo z", ["y"])]}
    add_pipeline(daemon, chain, project_dir)
    run = wait_run(daemon, start(daemon, "chain-sel", type="incoming", steps=["z"])["uuid"])
    assert [s["step"] for s in run["steps"]] == ["x", "y"] and run["status"] == "SUCCESS"
    run = wait_run(daemon, start(daemon, "chain-sel", type="selection", steps=["y"])["uuid"])
    assert [s["step"] for s in run["steps"]] == ["y"]
    assert logs(daemon, run["uuid"], "y") == ["y"]


def test_a_failed_step_aborts_its_descendants_and_the_run_fails(daemon, project_dir):
    p = {"name": "fails", "steps": [
        step("a", "echo starting; echo broken >&2; exit 3"),
        step("b", "echo never", ["a"]),
        step("c", "echo never", ["b"]),
        step("side", "echo side-ok"),
    ]}
    add_pipeline(daemon, p, project_dir)
    done = wait_run(daemon, start(daemon, "fails")["uuid"])
    assert done["status"] == "FAILURE"
    assert "a" in done["message"]
    st = statuses(done)
    assert st == {"a": "FAILURE", "b": "ABORTED", "c": "ABORTED", "side": "SUCCESS"}
    a = next(s for s in done["steps"] if s["step"] == "a")
    assert a["exit_code"] == 3 and a["message"] == "exited with code 3"
    b = next(s for s in done["steps"] if s["step"] == "b")
    assert b["started_at"] is None and "step a failed" in b["message"]
    r = daemon.get(f"/api/v1/runs/{done['uuid']}/steps/a/logs")
    assert [(l["stream"], l["message"]) for l in r.json()["lines"]] == [
        ("stdout", "starting"), ("stderr", "broken"), ("berth", "exited with code 3")]
    # Logs are kept per run: a second run does not overwrite the first's.
    again = wait_run(daemon, start(daemon, "fails")["uuid"])
    assert logs(daemon, done["uuid"], "a") == ["starting", "broken"]
    assert logs(daemon, again["uuid"], "a") == ["starting", "broken"]
    assert logs(daemon, done["uuid"], "b") == []


def test_cancel_aborts_the_run_and_kills_the_steps_whole_tree(daemon, project_dir):
    pids = project_dir / "pids"
    p = {"name": "cancel-me", "steps": [
        step("long", f"sleep 300 & echo $! >> {pids}; sleep 300 & echo $! >> {pids}; wait"),
        step("after", "echo never", ["long"]),
    ]}
    add_pipeline(daemon, p, project_dir)
    run = start(daemon, "cancel-me")
    wait_until(lambda: pids.exists() and len(pids.read_text().split()) == 2, 20,
               "the step's two children")
    children = [int(x) for x in pids.read_text().split()]
    assert all(pid_alive(pid) for pid in children)
    t0 = time.monotonic()
    r = daemon.post(f"/api/v1/runs/{run['uuid']}/cancel")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "ABORTED"
    now = daemon.get(f"/api/v1/runs/{run['uuid']}").json()
    assert now["status"] == "ABORTED" and set(statuses(now).values()) == {"ABORTED"}
    # SIGTERM reaches the whole tree (sleep dies of it); the grace period is 5 s.
    wait_until(lambda: not any(pid_alive(pid) for pid in children), 8, "the step's children")
    assert time.monotonic() - t0 < 8
    again = daemon.post(f"/api/v1/runs/{run['uuid']}/cancel")
    assert again.status_code == 409 and "ended already" in again.json()["error"]["message"]
    time.sleep(0.3)  # nothing starts after a cancel
    assert daemon.get(f"/api/v1/runs/{run['uuid']}/steps/after/logs").json()["lines"] == []


def test_py_sh_and_notebook_steps_with_frozen_parameters_and_data_passing(daemon, project_dir):
    (project_dir / "produce.py").write_text(textwrap.dedent("""\
        import orchest
        rate = orchest.get_step_param("rate")
        print("rate", rate)
        orchest.output({"rate": rate, "rows": [1, 2, 3]}, name="table")
        orchest.output("plain")
    """))
    (project_dir / "shout.sh").write_text('echo "shell step in $(pwd)"\n')
    nb = {"cells": [
        {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
         "source": ["import orchest\n", "inputs = orchest.get_inputs()\n",
                    "print('notebook got', inputs['table']['rows'], inputs['unnamed'])\n",
                    "orchest.output(sum(inputs['table']['rows']), name='total')\n"]},
    ], "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                   "language": "python"}},
        "nbformat": 4, "nbformat_minor": 5}
    (project_dir / "consume.ipynb").write_text(json.dumps(nb))
    (project_dir / "check.py").write_text(textwrap.dedent("""\
        import orchest
        print("total", orchest.get_inputs()["total"])
    """))
    # The pipeline file on disk says rate 1; the posted definition says 7 and must win.
    on_disk = {"name": "mixed", "steps": [
        {"name": "produce", "file": "produce.py", "parameters": {"rate": 1}},
        {"name": "shout", "file": "shout.sh"},
        {"name": "consume", "file": "consume.ipynb", "after": ["produce"]},
        {"name": "check", "file": "check.py", "after": ["consume"]},
    ]}
    (project_dir / "mixed.yaml").write_text(json.dumps(on_disk))
    posted = json.loads(json.dumps(on_disk))
    posted["steps"][0]["parameters"]["rate"] = 7
    r = daemon.post("/api/v1/runs", json={"definition": posted,
                                          "project_dir": str(project_dir)})
    assert r.status_code == 201, r.text
    done = wait_run(daemon, r.json()["uuid"], timeout=120)
    assert done["status"] == "SUCCESS", (done, logs(daemon, done["uuid"], "consume"))
    assert "rate 7" in logs(daemon, done["uuid"], "produce")
    assert f"shell step in {project_dir}" in logs(daemon, done["uuid"], "shout")
    assert "notebook got [1, 2, 3] ['plain']" in logs(daemon, done["uuid"], "consume")
    assert "total 6" in logs(daemon, done["uuid"], "check")
    # The executed notebook is the run's copy; the project's stays as it was.
    assert json.loads((project_dir / "consume.ipynb").read_text())["cells"][0]["outputs"] == []
    copies = list((daemon.data_dir / "runs" / done["uuid"] / "notebooks").glob("*.ipynb"))
    assert len(copies) == 1
    assert "notebook got" in copies[0].read_text()


def test_a_daemon_killed_mid_run_loses_nothing_and_the_run_completes(fresh_daemon, project_dir):
    gate = project_dir / "gate"
    p = {"name": "survive", "steps": [
        step("first", "echo first"),
        step("wait", f"while [ ! -e {gate} ]; do sleep 0.05; done; echo released", ["first"]),
        step("last", "echo last", ["wait"]),
    ]}
    add_pipeline(fresh_daemon, p, project_dir)
    run = start(fresh_daemon, "survive")
    wait_until(lambda: statuses(fresh_daemon.get(f"/api/v1/runs/{run['uuid']}").json())["wait"]
               == "STARTED", 20, "the waiting step to start")
    fresh_daemon.kill9()
    gate.write_text("go")  # the step ends while no daemon runs
    time.sleep(0.3)
    fresh_daemon.start()
    done = wait_run(fresh_daemon, run["uuid"])
    assert done["status"] == "SUCCESS", done
    assert logs(fresh_daemon, run["uuid"], "wait") == ["released"]
    assert logs(fresh_daemon, run["uuid"], "last") == ["last"]
    # The step that ran through the crash ran once.
    assert logs(fresh_daemon, run["uuid"], "first") == ["first"]


def test_validation_errors_name_the_problem_and_leave_nothing_behind(daemon, project_dir):
    before = daemon.get("/api/v1/runs?limit=0").json()["runs"]
    pipelines_before = daemon.get("/api/v1/pipelines").json()["pipelines"]
    cases = [
        ({"name": "v1", "steps": [step("a", "true", ["ghost"])]}, ["ghost"]),
        ({"name": "v2", "steps": [step("a", "true", ["b"]), step("b", "true", ["a"])]},
         ["cycle", "a", "b"]),
        ({"name": "v3", "steps": [step("a"), step("a")]}, ["duplicate", "a"]),
        ({"name": "v4", "steps": [{"name": "a", "file": "model.exe"}]}, ["model.exe"]),
    ]
    for pipeline, words in cases:
        r = daemon.post("/api/v1/pipelines", data=json.dumps(pipeline))
        assert r.status_code == 400, r.text
        msg = r.json()["error"]["message"]
        assert all(w in msg for w in words), msg
        r = daemon.post("/api/v1/runs", json={"definition": pipeline,
                                              "project_dir": str(project_dir)})
        assert r.status_code == 400, r.text
    add_pipeline(daemon, diamond(project_dir, "v-ok"), project_dir)
    r = daemon.post("/api/v1/pipelines/v-ok/runs", json={"type": "selection", "steps": ["zz"]})
    assert r.status_code == 400 and "zz" in r.json()["error"]["message"], r.text
    r = daemon.post("/api/v1/pipelines/v-ok/runs", json={"type": "sideways"})
    assert r.status_code == 400 and "sideways" in r.json()["error"]["message"], r.text
    missing = {"name": "v5", "steps": [{"name": "a", "file": "not-there.py"}]}
    r = daemon.post("/api/v1/runs", json={"definition": missing, "project_dir": str(project_dir)})
    assert r.status_code == 400 and "not-there.py" in r.json()["error"]["message"], r.text
    after = daemon.get("/api/v1/runs?limit=0").json()["runs"]
    assert len(after) == len(before)
    names = {p["name"] for p in daemon.get("/api/v1/pipelines").json()["pipelines"]}
    assert names == {p["name"] for p in pipelines_before} | {"v-ok"}


def orchest_definition(project_dir):
    """An Orchest pipeline.json: steps keyed by uuid, incoming_connections, parameters."""
    (project_dir / "one.py").write_text(
        "import orchest\nprint('one says', orchest.get_step_param('word'))\n")
    (project_dir / "two.sh").write_text("echo two\n")
    return {
        "name": "orchest-pipeline", "uuid": "9f1c2d3e-pipe", "version": "1.0",
        "parameters": {"level": 2}, "settings": {},
        "steps": {
            "u-one": {"uuid": "u-one", "title": "one", "file_path": "one.py",
                      "incoming_connections": [], "parameters": {"word": "posted"},
                      "environment": "env-1", "kernel": {"name": "python", "display_name": "P"},
                      "meta_data": {"position": [0, 0], "hidden": False}},
            "u-two": {"uuid": "u-two", "title": "two", "file_path": "two.sh",
                      "incoming_connections": ["u-one"], "parameters": {},
                      "environment": "env-1"},
        },
    }


def test_orchest_api_runs_with_orchests_payloads(daemon, project_dir):
    definition = orchest_definition(project_dir)
    # On disk the step's parameter differs: the posted one must be what the step reads.
    disk = json.loads(json.dumps(definition))
    disk["steps"]["u-one"]["parameters"]["word"] = "on-disk"
    (project_dir / "pipeline.orchest").write_text(json.dumps(disk))
    payload = {"uuids": ["u-one", "u-two"], "project_uuid": "proj-7", "run_type": "full",
               "pipeline_definition": definition,
               "run_config": {"project_dir": str(project_dir),
                              "pipeline_path": "pipeline.orchest"}}
    r = daemon.post("/orchest/api/runs/", json=payload)
    assert r.status_code == 201, r.text
    run = r.json()
    assert run["uuid"] == run["run_uuid"]
    assert run["pipeline_uuid"] == "9f1c2d3e-pipe" and run["project_uuid"] == "proj-7"
    assert [s["step_uuid"] for s in run["pipeline_steps"]] == ["u-one", "u-two"]
    assert set(run["pipeline_steps"][0]) == {"run_uuid", "step_uuid", "status", "started_time",
                                             "finished_time"}
    done = wait_until(lambda: (lambda j: j if j["status"] in ENDED else None)(
        daemon.get(f"/orchest/api/runs/{run['uuid']}").json()), 60, "the orchest run")
    assert done["status"] == "SUCCESS", done
    assert "one says posted" in logs(daemon, run["uuid"], "u-one")
    step = daemon.get(f"/orchest/api/runs/{run['uuid']}/u-two").json()
    assert step["status"] == "SUCCESS" and step["finished_time"]
    # A PUT never moves an end state.
    r = daemon.put(f"/orchest/api/runs/{run['uuid']}/u-two", json={"status": "STARTED"})
    assert r.status_code == 409 and "final" in r.json()["message"], r.text
    assert daemon.get(f"/orchest/api/runs/{run['uuid']}/u-two").json()["status"] == "SUCCESS"

    # The 2020 key, a selection and the list filters.
    payload2 = {"uuids": ["u-two"], "project_uuid": "proj-7", "run_type": "incoming",
                "pipeline_description": definition,
                "run_config": {"project_dir": str(project_dir)}}
    r = daemon.post("/orchest/api/runs/", json=payload2)
    assert r.status_code == 201, r.text
    assert [s["step_uuid"] for s in r.json()["pipeline_steps"]] == ["u-one"]
    listed = daemon.get("/orchest/api/runs/?project_uuid=proj-7").json()["runs"]
    assert {x["uuid"] for x in listed} >= {run["uuid"], r.json()["uuid"]}
    assert daemon.get("/orchest/api/runs/?project_uuid=nope").json()["runs"] == []
    by_pipeline = daemon.get("/orchest/api/runs/?pipeline_uuid=9f1c2d3e-pipe").json()["runs"]
    assert len(by_pipeline) >= 2
    wait_until(lambda: daemon.get(f"/orchest/api/runs/{r.json()['uuid']}").json()["status"]
               in ENDED, 60, "the incoming run")


def test_orchest_api_cancel_and_errors(daemon, project_dir):
    definition = {"name": "sleepy", "uuid": "p-sleepy", "steps": {
        "s1": {"uuid": "s1", "title": "sleep", "file_path": "sleep.sh",
               "incoming_connections": []}}}
    (project_dir / "sleep.sh").write_text("sleep 300\n")
    r = daemon.post("/orchest/api/runs/", json={
        "uuids": ["s1"], "project_uuid": "p", "run_type": "full",
        "pipeline_definition": definition, "run_config": {"project_dir": str(project_dir)}})
    assert r.status_code == 201, r.text
    run_id = r.json()["uuid"]
    wait_until(lambda: daemon.get(f"/orchest/api/runs/{run_id}").json()["pipeline_steps"][0]
               ["status"] == "STARTED", 20, "the step to start")
    r = daemon.delete(f"/orchest/api/runs/{run_id}")
    assert r.status_code == 200 and "message" in r.json(), r.text
    assert daemon.get(f"/orchest/api/runs/{run_id}").json()["status"] == "ABORTED"
    r = daemon.delete(f"/orchest/api/runs/{run_id}")
    assert 400 <= r.status_code < 500 and "ended already" in r.json()["message"], r.text
    assert daemon.get("/orchest/api/runs/no-such").status_code == 404
    assert "message" in daemon.get("/orchest/api/runs/no-such").json()
    bad = {"uuids": [], "project_uuid": "p", "run_type": "diagonal",
           "pipeline_definition": definition, "run_config": {"project_dir": str(project_dir)}}
    r = daemon.post("/orchest/api/runs/", json=bad)
    assert r.status_code == 400 and "diagonal" in r.json()["message"], r.text
    cyclic = json.loads(json.dumps(definition))
    cyclic["steps"]["s1"]["incoming_connections"] = ["s1"]
    r = daemon.post("/orchest/api/runs/", json=dict(bad, run_type="full",
                                                    pipeline_definition=cyclic))
    assert r.status_code == 400 and "cycle" in r.json()["message"], r.text
    r = daemon.post("/orchest/api/runs/", json=dict(bad, run_type="selection", uuids=["zz"]))
    assert r.status_code == 400 and "zz" in r.json()["message"], r.text
    r = daemon.request("GET", "/orchest/api/runs/", token="")
    assert r.status_code == 401 and "message" in r.json(), r.text


def test_a_project_token_runs_only_inside_its_project(daemon, project_dir):
    from conftest import project_with_token
    project, token = project_with_token(daemon)
    p = {"name": "mine", "steps": [step("a", "pwd")]}
    r = daemon.post(f"/api/v1/pipelines?project_dir={project_dir}", data=json.dumps(p),
                    token=token)
    assert r.status_code == 403 and "inside its project" in r.json()["error"]["message"], r.text
    r = daemon.post("/api/v1/pipelines", data=json.dumps(p), token=token)
    assert r.status_code == 201, r.text
    run = daemon.post("/api/v1/pipelines/mine/runs", json={}, token=token).json()
    done = wait_until(lambda: (lambda j: j if j["status"] in ENDED else None)(
        daemon.get(f"/api/v1/runs/{run['uuid']}", token=token).json()), 30, "the run")
    assert done["status"] == "SUCCESS"
    out = daemon.get(f"/api/v1/runs/{run['uuid']}/steps/a/logs", token=token).json()["lines"]
    assert out[0]["message"].endswith(f"/projects/{project}/project")
    # Another project's token does not see the run.
    _, other = project_with_token(daemon)
    assert daemon.get(f"/api/v1/runs/{run['uuid']}", token=other).status_code == 404


def wait_job(d, job_id, timeout=60, path="/api/v1/jobs"):
    def ended():
        j = d.get(f"{path}/{job_id}").json()
        return j if j["status"] in ENDED else None
    return wait_until(ended, timeout, f"job {job_id} to end")


def test_a_job_runs_once_per_parameter_set_in_a_snapshot(daemon, project_dir):
    (project_dir / "show.py").write_text(
        "import orchest\nprint('rate', orchest.get_step_param('rate'), open('data.txt').read())\n")
    (project_dir / "data.txt").write_text("v1")
    p = {"name": "jobbed", "steps": [{"name": "show", "file": "show.py",
                                      "parameters": {"rate": 0}}]}
    add_pipeline(daemon, p, project_dir)
    r = daemon.post("/api/v1/jobs", json={"name": "sweep", "pipeline": "jobbed",
                                          "parameter_grid": {"show": {"rate": [1, 2]}}})
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["status"] in ("PENDING", "STARTED") and len(job["parameters"]) == 2
    done = wait_job(daemon, job["uuid"])
    (project_dir / "data.txt").write_text("v2")  # after the runs: their snapshots keep v1
    assert done["status"] == "SUCCESS", done
    assert done["runs"] == {"total": 2, "succeeded": 2, "failed": 0, "running": 0}
    runs = daemon.get(f"/api/v1/jobs/{job['uuid']}").json()["recent_runs"]
    outs = sorted(logs(daemon, run["uuid"], "show")[0] for run in runs)
    assert outs == ["rate 1 v1", "rate 2 v1"]
    assert all(run["kind"] == "job" and run["project_dir"] != str(project_dir) for run in runs)
    # A failing job is FAILURE, not SUCCESS.
    bad = {"name": "bad", "steps": [step("boom", "exit 2")]}
    r = daemon.post("/api/v1/jobs", json={"name": "bad", "definition": bad,
                                          "project_dir": str(project_dir)})
    assert r.status_code == 201, r.text
    failed = wait_job(daemon, r.json()["uuid"])
    assert failed["status"] == "FAILURE" and "1 of 1 runs" in failed["message"]
    # Refused jobs store nothing.
    before = len(daemon.get("/api/v1/jobs").json()["jobs"])
    for body, word in [({"pipeline": "jobbed", "schedule": "99 * * * *"}, "99"),
                       ({"pipeline": "jobbed", "schedule": "0 3 * * *", "time_zone": "Mars/Base"},
                        "Mars/Base"),
                       ({"pipeline": "jobbed", "parameters": [{"nope": {"rate": 1}}]}, "nope"),
                       ({"pipeline": "jobbed", "at": "tomorrow"}, "tomorrow")]:
        r = daemon.post("/api/v1/jobs", json=body)
        assert r.status_code == 400 and word in r.json()["error"]["message"], r.text
    assert len(daemon.get("/api/v1/jobs").json()["jobs"]) == before


def test_a_cron_job_with_two_parameter_sets(daemon, project_dir):
    p = {"name": "every-minute", "steps": [step("tick", "echo tick")]}
    add_pipeline(daemon, p, project_dir)
    r = daemon.post("/api/v1/jobs", json={
        "name": "minutely", "pipeline": "every-minute", "schedule": "* * * * *",
        "time_zone": "Europe/Amsterdam",
        "parameters": [{"tick": {"n": 1}}, {"tick": {"n": 2}}]})
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["next_run"] and job["time_zone"] == "Europe/Amsterdam"
    # The next minute boundary fires both parameter sets.
    wait_until(lambda: daemon.get(f"/api/v1/jobs/{job['uuid']}").json()["runs"]["succeeded"] >= 2,
               75, "the cron job's first two runs")
    j = daemon.get(f"/api/v1/jobs/{job['uuid']}").json()
    assert j["status"] == "STARTED" and j["last_run"]
    assert daemon.post(f"/api/v1/jobs/{job['uuid']}/pause").json()["status"] == "PAUSED"
    assert daemon.post(f"/api/v1/jobs/{job['uuid']}/resume").json()["status"] == "STARTED"
    r = daemon.post(f"/api/v1/jobs/{job['uuid']}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "ABORTED", r.text
    assert daemon.post(f"/api/v1/jobs/{job['uuid']}/cancel").status_code == 409


def test_orchest_api_jobs(daemon, project_dir):
    definition = orchest_definition(project_dir)
    r = daemon.post("/orchest/api/jobs/", json={
        "name": "orchest-job", "project_uuid": "proj-7", "pipeline_uuid": "9f1c2d3e-pipe",
        "pipeline_definition": definition, "cron_schedule": None,
        "parameters": [{"u-one": {"word": "first"}}, {"u-one": {"word": "second"}}],
        "pipeline_run_spec": {"run_config": {"project_dir": str(project_dir)}}})
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["pipeline_uuid"] == "9f1c2d3e-pipe"
    done = wait_job(daemon, job["uuid"], path="/orchest/api/jobs")
    assert done["status"] == "SUCCESS", done
    assert len(done["pipeline_runs"]) == 2
    words = sorted(logs(daemon, run["uuid"], "u-one")[0] for run in done["pipeline_runs"])
    assert words == ["one says first", "one says second"]
    r = daemon.delete(f"/orchest/api/jobs/{job['uuid']}")
    assert r.status_code == 409 and "ended already" in r.json()["message"], r.text
    assert daemon.get("/orchest/api/jobs/").json()["jobs"]


def test_a_jobs_scoped_redis_is_up_during_the_job_run_only(fresh_daemon, project_dir):
    d = fresh_daemon
    r = d.post("/api/v1/templates/redis/services", json={"name": "cache"})
    assert r.status_code == 201, r.text
    definition = r.json()["definition"]
    definition["scope"] = ["jobs"]
    r = d.put("/api/v1/services/cache", json=definition)
    assert r.status_code == 200, r.text
    assert d.post("/api/v1/services/cache/stop").status_code == 200

    def running_instances():
        st = d.get("/api/v1/services/cache/status").json()
        return [i for i in st["instances"] if i["state"] in ("running", "starting")]
    wait_until(lambda: not running_instances(), 30, "the jobs-scoped redis to be stopped")
    (project_dir / "use_redis.py").write_text(textwrap.dedent("""\
        import orchest, redis
        host = orchest.get_service("cache")["internal_hostname"]
        r = redis.Redis(host=host, port=6379)
        r.set("k", "from the job")
        print(r.get("k").decode())
    """))
    p = {"name": "with-redis", "steps": [{"name": "use", "file": "use_redis.py"}]}
    add_pipeline(d, p, project_dir)
    r = d.post("/api/v1/jobs", json={"name": "redis-job", "pipeline": "with-redis"})
    assert r.status_code == 201, r.text
    done = wait_job(d, r.json()["uuid"], timeout=90)
    assert done["status"] == "SUCCESS", (done, d.get(f"/api/v1/jobs/{done['uuid']}").json())
    run = d.get(f"/api/v1/jobs/{done['uuid']}").json()["recent_runs"][0]
    assert logs(d, run["uuid"], "use") == ["from the job"]
    # After the job's last run, the service is stopped again.
    wait_until(lambda: not running_instances(), 30, "the jobs-scoped redis to stop after the job")
    assert d.get("/api/v1/services/cache/status").json()["desired_running"] is False
    d.delete("/api/v1/services/cache")


def test_under_a_flood_of_job_runs_an_interactive_run_goes_next(fresh_daemon, project_dir):
    d = fresh_daemon
    p = {"name": "slow", "steps": [step("nap", "sleep 0.4")]}
    add_pipeline(d, p, project_dir)
    r = d.post("/api/v1/jobs", json={"name": "flood", "pipeline": "slow",
                                     "parameters": [{"nap": {"i": i}} for i in range(12)]})
    assert r.status_code == 201, r.text
    job = r.json()["uuid"]
    wait_until(lambda: d.get(f"/api/v1/jobs/{job}").json()["runs"]["total"] == 12, 20,
               "the job's twelve runs")
    queued = [x for x in d.get(f"/api/v1/runs?limit=0").json()["runs"]
              if x["kind"] == "job" and x["status"] == "PENDING"]
    assert len(queued) >= 6, queued  # most wait: two steps run at a time on this machine
    assert all(x["waiting"] for x in queued)
    interactive = start(d, "slow")
    done = wait_run(d, interactive["uuid"])
    started = done["steps"][0]["started_at"]
    # No job run that was queued before it started before it.
    later = [d.get(f"/api/v1/runs/{x['uuid']}").json()["steps"][0]["started_at"] for x in queued]
    assert sum(1 for t in later if t and t < started) <= 2, (started, sorted(later))
    wait_job(d, job, timeout=60)


def test_orchest_api_sessions_map_onto_berths_sessions(fresh_daemon):
    d = fresh_daemon
    r = d.post("/orchest/api/sessions/", json={"project_uuid": "proj-7",
                                               "pipeline_uuid": "pipe-1",
                                               "pipeline_path": "p.orchest",
                                               "project_dir": "/ignored"})
    assert r.status_code == 201, r.text
    s = r.json()
    assert s["project_uuid"] == "proj-7" and s["pipeline_uuid"] == "pipe-1"
    assert s["status"] in ("LAUNCHING", "RUNNING")
    again = d.post("/orchest/api/sessions/", json={"project_uuid": "proj-7",
                                                   "pipeline_uuid": "pipe-1"})
    assert again.status_code == 409 and "already has a session" in again.json()["message"]
    listed = d.get("/orchest/api/sessions/?pipeline_uuid=pipe-1").json()["sessions"]
    assert [x["pipeline_uuid"] for x in listed] == ["pipe-1"]
    assert d.get("/orchest/api/sessions/proj-7/pipe-1").json()["pipeline_uuid"] == "pipe-1"
    # The same session through berth's own API.
    assert d.get("/api/v1/sessions/pipe-1").status_code == 200
    r = d.delete("/orchest/api/sessions/proj-7/pipe-1")
    assert r.status_code == 200 and "shutdown" in r.json()["message"], r.text
    r = d.get("/orchest/api/sessions/proj-7/pipe-1")
    assert r.status_code == 404 and "message" in r.json()
    r = d.post("/orchest/api/sessions/", json={"project_uuid": "proj-7"})
    assert r.status_code == 400 and "pipeline_uuid" in r.json()["message"]
