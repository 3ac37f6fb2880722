"""Recipes with real processes (seed 003, Neptune): the default ping recipe started, called and
stopped many times; a 4-node graph whose two-input node reads its inputs by edge order; start
overrides for one run only; a node killed with -9 restarted and counted; a hanging node making
its recipe DEAD, notified and restarted; a node type berth does not have failing the start with
its name; construct / destruct / construct; recipes started and stopped by concurrent callers;
recipes across daemon restarts, Neptune's cache files and reset; every invalid recipe a 400
naming the problem; and the Neptune dialect's own paths, shapes and texts.

Recipe names are kept under 12 characters (Neptune's rule), so they come from unique() with a
prefix of at most four letters. The module's daemon acts on project `default`, the project the
Neptune dialect serves.
"""
import io
import json
import os
import re
import signal
import subprocess
import tarfile
import threading
import time
from pathlib import Path

import pytest
import requests

from conftest import (BERTH_BIN, REPO, assert_native_error, clean_env, pid_alive, reap_instances,
                      unique, wait_until)

STATES = {"STOPPED", "STARTING", "STARTED", "DEAD"}
NEPTUNE_STATES = {"STOPPED": -1, "DEAD": 0, "STARTING": 1, "STARTED": 2}

# A node type written with the Python SDK: publishes the message it read with its run's
# arguments under "args"; on {"hang": true} it sleeps without reading its input again, so it
# forwards no heartbeat (a node stuck in its own code).
ECHO_NODE = b'''\
import time

from berth.node import Node

node = Node.from_environment()


def work(message):
    data = message.object()
    if data.get("hang"):
        time.sleep(3600)
    data["args"] = node.args
    data["node"] = node.name
    return data


node.run(work)
'''


# --- helpers ---------------------------------------------------------------------------------

def node_bundle(files):
    """A node bundle: a .tar.gz of a folder holding `files` ({relative path: text or bytes})."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def push_node(d, node_type, files):
    r = d.put(f"/api/v1/nodes/{node_type}", data=node_bundle(files))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["name"] == node_type and body["digest"].startswith("sha256:"), body
    return body


def tup(*items):
    """A tuple as Neptune's cache and clients write it."""
    return {"__tuple__": True, "items": list(items)}


def construct(d, recipe):
    r = d.post("/api/v1/recipes", json=recipe)
    assert r.status_code == 201, r.text
    v = r.json()
    assert v["name"] == recipe["name"] and v["state"] == "STOPPED", v
    return v


def view(d, name):
    r = d.get(f"/api/v1/recipes/{name}")
    assert r.status_code == 200, r.text
    v = r.json()
    assert v["state"] in STATES, v
    return v


def start(d, name, overrides=None):
    """Starts a recipe and checks that the answer says STARTED; returns the view."""
    body = None if overrides is None else {"overrides": overrides}
    r = d.post(f"/api/v1/recipes/{name}/start", json=body)
    assert r.status_code == 200, r.text
    v = r.json()
    assert v["state"] == "STARTED", v
    assert all(n["pid"] > 0 and n["state"] == "running" for n in v["nodes"]), v["nodes"]
    return v


def stop(d, name):
    r = d.post(f"/api/v1/recipes/{name}/stop")
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "STOPPED", r.json()
    return r.json()


def wait_state(d, name, state, timeout=10.0):
    """Polls the recipe until it is in `state`; returns its view."""
    def reached():
        v = view(d, name)
        return v if v["state"] == state else None
    return wait_until(reached, timeout, f"recipe {name} to be {state}", interval=0.05)


def serve(d, name, method="GET", **kw):
    return d.request(method, f"/api/v1/recipes/{name}/serve", **kw)


def call_ping(d, name, **kw):
    r = serve(d, name, **kw)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json"), r.headers
    return r.json()


def assert_pong(answer):
    assert isinstance(answer.get("id"), int), answer
    assert isinstance(answer.get("pong"), str), answer
    assert abs(int(answer["pong"]) - time.time()) < 5, answer


def node_pids(v):
    return [n["pid"] for n in v["nodes"]]


def wait_gone(pids, timeout=5.0):
    wait_until(lambda: not any(pid_alive(p) for p in pids), timeout,
               f"node processes {pids} to end")


def notifications(d, service):
    r = d.get(f"/api/v1/notifications?service={service}")
    assert r.status_code == 200, r.text
    return r.json()["notifications"]


def wait_throughput(d, name, predicate, what, timeout=10.0):
    """Polls GET .../throughput until `predicate(answer)`; fails with the last answer."""
    last = {}

    def check():
        r = d.get(f"/api/v1/recipes/{name}/throughput")
        assert r.status_code == 200, r.text
        last["body"] = r.json()
        return last["body"] if predicate(last["body"]) else None
    try:
        return wait_until(check, timeout, what, interval=0.2)
    except AssertionError as e:
        edges = [(x["source"], x["sink"], x["messages"], x["per_second"])
                 for x in last["body"]["edges"]]
        raise AssertionError(f"{e}; last throughput {last['body']['throughput']}, edges "
                             f"(source, sink, messages, per_second): {edges}") from None


def neptune(d, method, path, **kw):
    """A Neptune client's request: no credentials (the daemon listens on loopback only)."""
    return d.request(method, "/neptune" + path, token="", **kw)


def neptune_text(r, *fragments):
    assert r.status_code == 200, (r.status_code, r.text)
    assert r.headers["Content-Type"].startswith("text/plain"), r.headers
    for f in fragments:
        assert f in r.text, r.text
    return r.text


def neptune_list(d):
    r = neptune(d, "GET", "/services/list")
    assert r.status_code == 200, r.text
    return r.json()["services"]


def ping_recipe(name, nodes=("ping",), **extra):
    """A chain START -> nodes[0] -> nodes[1] ... -> END served by the ping handler (the edges
    from START and to END are the implicit ones)."""
    edges = [[i, i + 1] for i in range(len(nodes) - 1)]
    return {"name": name, "graph": {"nodes": list(nodes), "edges": edges},
            "handlers": {"get": "ping"}, **extra}


def untuple(v):
    """Tuple hints as plain lists, everywhere in `v` (what a JSON client of Neptune sees)."""
    if isinstance(v, dict) and v.get("__tuple__") is True and isinstance(v.get("items"), list):
        return [untuple(x) for x in v["items"]]
    if isinstance(v, dict):
        return {k: untuple(x) for k, x in v.items()}
    if isinstance(v, list):
        return [untuple(x) for x in v]
    return v


@pytest.fixture(scope="module")
def echo_node(daemon):
    """The `echo` node type pushed to the module daemon's default project."""
    pushed = push_node(daemon, "echo", {"node.py": ECHO_NODE})
    r = daemon.get("/api/v1/nodes")
    assert r.status_code == 200, r.text
    listed = {n["name"]: n for n in r.json()["nodes"]}
    assert {"ping", "passthrough", "merge", "stream"} <= set(listed)
    assert listed["ping"]["builtin"] is True
    assert listed["echo"]["builtin"] is False and listed["echo"]["digest"] == pushed["digest"]
    return "echo"


@pytest.fixture(autouse=True)
def module_daemon_answers(request):
    """Fails a test at once, saying why, when an earlier one left the module's daemon unable
    to answer recipe requests (rather than every later test timing out on its own)."""
    if "daemon" not in request.fixturenames:
        return
    d = request.getfixturevalue("daemon")
    if getattr(d, "stuck", False):
        pytest.fail("the module's daemon stopped answering GET /api/v1/recipes in an earlier test")
    try:
        d.get("/api/v1/recipes", timeout=5)
    except requests.Timeout:
        d.stuck = True
        pytest.fail("the module's daemon no longer answers GET /api/v1/recipes within 5 s; "
                    "an earlier test left its recipe engine stuck")


@pytest.fixture
def short_data_dir(tmp_path):
    """A data dir with a short path: the graph's IPC sockets live under it (< 100 chars)."""
    return tmp_path / "d"


# --- 1. the default ping recipe --------------------------------------------------------------

def test_the_default_ping_recipe_starts_answers_and_stops_many_times(daemon):
    listed = {v["name"]: v for v in daemon.get("/api/v1/recipes").json()["recipes"]}
    assert "ping" in listed, listed
    ping = listed["ping"]
    assert ping["state"] == "STOPPED" and ping["url"] == "ping", ping
    assert ping["recipe"]["handlers"] == {"get": ["handlers.ping_handler"]}, ping
    assert [n["type"] for n in ping["nodes"]] == ["ping"] and ping["nodes"][0]["pid"] == 0

    # Not started: the ping handler says so.
    r = serve(daemon, "ping")
    assert r.status_code == 500 and "ping is not active" in r.text, r.text

    ids = []
    for _ in range(5):
        t0 = time.monotonic()
        v = start(daemon, "ping")
        assert time.monotonic() - t0 < 3, "a 1-node graph should start well under a second"
        assert v["message"].startswith("started"), v
        (pid,) = node_pids(v)
        assert pid_alive(pid)
        for _ in range(3):
            answer = call_ping(daemon, "ping")
            assert_pong(answer)
            assert set(answer) == {"id", "pong"}, answer
            ids.append(answer["id"])
        # The same recipe through Neptune's dialect.
        r = neptune(daemon, "GET", "/serve/ping")
        assert r.status_code == 200, r.text
        assert_pong(r.json())
        ids.append(r.json()["id"])
        v = stop(daemon, "ping")
        assert v["nodes"][0]["pid"] == 0 and v["nodes"][0]["state"] == "stopped", v
        wait_gone([pid])
        assert view(daemon, "ping")["state"] == "STOPPED"
    assert len(set(ids)) == len(ids), f"every call has its own id: {ids}"


# --- 2. a 4-node graph, inputs by edge order -------------------------------------------------

def four_node(name, b_first):
    into_merge = [["b", "m"], ["c", "m"]] if b_first else [["c", "m"], ["b", "m"]]
    return {"name": name,
            "graph": {"nodes": [{"type": "passthrough", "name": "a"},
                                {"type": "ping", "name": "b"},
                                {"type": "passthrough", "name": "c"},
                                {"type": "merge", "name": "m"}],
                      # m -> END is implicit: m is the last node.
                      "edges": [[-1, "a"], ["a", "b"], ["a", "c"], *into_merge]},
            "handlers": {"get": "ping"}}


def test_a_two_input_node_reads_its_inputs_in_edge_order_and_edges_count(daemon):
    name = unique("fn")
    v = construct(daemon, four_node(name, b_first=True))
    assert [(e["source"], e["sink"]) for e in v["edges"]] == [
        ("START", "a"), ("a", "b"), ("a", "c"), ("b", "m"), ("c", "m"), ("m", "END")], v["edges"]
    v = start(daemon, name)
    assert len(set(node_pids(v))) == 4
    calls = 12
    for i in range(calls):
        try:
            answer = call_ping(daemon, name, timeout=5)
        except requests.Timeout:
            raise AssertionError(
                f"call {i} to the 4-node graph, STARTED since {v['since']}, got no answer "
                f"within 5 s; its view now: {view(daemon, name)}") from None
        assert set(answer) == {"inputs"}, answer
        first, second = answer["inputs"]
        assert_pong(first)  # input 0 is b's output: ping added "pong"
        assert "pong" not in second and isinstance(second["id"], int), answer  # c passed it on
        assert first["id"] == second["id"], answer

    # Every edge counts the messages (the nodes report theirs with the heartbeats), and the
    # rate of messages per second reaching END shows at the heartbeat after them.
    seen = {"throughput": 0}

    def counted(body):
        seen["throughput"] = max(seen["throughput"], body["throughput"])
        return all(e["messages"] >= calls for e in body["edges"]) and seen["throughput"] > 0
    try:
        body = wait_throughput(daemon, name, counted, "every edge to count the calls and a "
                               "throughput above 0")
    except AssertionError as e:
        raise AssertionError(f"{e}; highest throughput seen: {seen['throughput']}") from None
    assert body["name"] == name and body["state"] == "STARTED"
    assert [(e["source"], e["sink"]) for e in body["edges"]] == [
        (e["source"], e["sink"]) for e in v["edges"]]
    # More calls: the counts grow.
    before = {(e["source"], e["sink"]): e["messages"] for e in body["edges"]}
    for _ in range(3):
        call_ping(daemon, name)
    wait_throughput(daemon, name, lambda b: all(
        e["messages"] >= before[(e["source"], e["sink"])] + 3 for e in b["edges"]),
        "the counts to grow by 3")
    stop(daemon, name)

    # The same graph with the edges into m added the other way round: c is input 0.
    other = unique("fn")
    construct(daemon, four_node(other, b_first=False))
    start(daemon, other)
    answer = call_ping(daemon, other, timeout=5)
    first, second = answer["inputs"]
    assert "pong" not in first, answer
    assert_pong(second)
    stop(daemon, other)


# --- 3. overrides change one run only --------------------------------------------------------

def test_overrides_change_one_run_only(daemon, echo_node):
    name = unique("ov")
    recipe = {"name": name, "graph": {"nodes": [{"type": echo_node, "name": "e"}]},
              "args": [{"base": 1, "drop": "me"}],
              "handlers": {"get": "ping", "post": "forward"}}
    stored = construct(daemon, recipe)["recipe"]
    assert stored["args"] == [{"base": 1, "drop": "me"}], stored

    start(daemon, name, overrides={"e": {"add": {"k": 1}, "remove": ["drop"]}})
    answer = call_ping(daemon, name, method="POST", json={"x": 2})
    assert answer == {"x": 2, "args": {"base": 1, "k": 1}, "node": "e"}, answer
    stop(daemon, name)

    start(daemon, name)
    answer = call_ping(daemon, name, method="POST", json={"x": 3})
    assert answer["args"] == {"base": 1, "drop": "me"}, answer
    # GET goes through the ping handler: the node sees the same arguments.
    assert call_ping(daemon, name)["args"] == {"base": 1, "drop": "me"}
    stop(daemon, name)
    assert view(daemon, name)["recipe"] == stored

    # An override naming a node the recipe does not have is refused, naming it.
    r = daemon.post(f"/api/v1/recipes/{name}/start", json={"overrides": {"ghost": {"add": {}}}})
    assert_native_error(r, 400, contains=("ghost", "e"))
    assert view(daemon, name)["state"] == "STOPPED"


def test_the_view_shows_the_overrides_of_the_running_start(daemon, echo_node):
    name = unique("ovv")
    construct(daemon, {"name": name, "graph": {"nodes": [echo_node]},
                       "handlers": {"post": "forward"}})
    overrides = {echo_node: {"add": {"k": 1}}}
    v = start(daemon, name, overrides=overrides)
    try:
        assert v["overrides"] == overrides, v
        assert view(daemon, name)["overrides"] == overrides
    finally:
        stop(daemon, name)
    start(daemon, name)
    try:
        assert view(daemon, name)["overrides"] == {}
    finally:
        stop(daemon, name)


# --- 4. kill -9 of a node --------------------------------------------------------------------

def test_a_node_killed_with_sigkill_is_restarted_counted_and_the_recipe_answers(daemon):
    name = unique("kl")
    construct(daemon, ping_recipe(name, nodes=("passthrough", "ping")))
    v = start(daemon, name)
    assert_pong(call_ping(daemon, name))
    old = v["nodes"][1]["pid"]
    os.kill(old, signal.SIGKILL)

    def restarted():
        n = view(daemon, name)["nodes"][1]
        return n if n["restarts"] == 1 and n["pid"] not in (0, old) else None
    n = wait_until(restarted, 5, f"node ping of {name} to be restarted")
    assert n["state"] == "running" and "signal 9" in n["last_exit"], n
    assert pid_alive(n["pid"]) and not pid_alive(old)
    t0 = time.monotonic()
    assert_pong(call_ping(daemon, name))
    assert time.monotonic() - t0 < 3
    v = view(daemon, name)
    assert v["state"] == "STARTED" and v["dead_count"] == 0, v
    assert v["nodes"][0]["restarts"] == 0 and v["nodes"][0]["pid"] == node_pids(v)[0]
    stop(daemon, name)


# --- 5. a node that hangs --------------------------------------------------------------------

def test_a_hanging_node_makes_the_recipe_dead_notified_and_restarted(daemon, echo_node):
    name = unique("hg")
    construct(daemon, {"name": name, "graph": {"nodes": [echo_node]},
                       "handlers": {"get": "ping", "post": "forward"}})
    v = start(daemon, name)
    (old,) = node_pids(v)
    assert call_ping(daemon, name, method="POST", json={"n": 1})["n"] == 1

    t0 = time.monotonic()
    try:
        r = serve(daemon, name, method="POST", json={"hang": True}, timeout=1.5)
        assert r.status_code >= 500, r.text  # no answer from a stuck graph
    except requests.Timeout:
        pass
    v = wait_state(daemon, name, "DEAD", timeout=9)
    elapsed = time.monotonic() - t0
    # No heartbeat reached END for 5 s; the last one may have come up to 2.5 s before the hang.
    assert 2 <= elapsed <= 9, elapsed
    assert v["dead_count"] == 1 and "heartbeat" in v["message"], v
    critical = [n for n in notifications(daemon, name) if n["severity"] == "CRITICAL"]
    assert critical and name in critical[0]["message"], critical

    v = wait_state(daemon, name, "STARTED", timeout=10)
    assert v["dead_count"] == 1, v
    (new,) = node_pids(v)
    assert new not in (0, old)
    wait_gone([old])
    assert call_ping(daemon, name, method="POST", json={"n": 2})["n"] == 2
    stop(daemon, name)


# --- 6. a node type or handler berth does not have -------------------------------------------

@pytest.mark.parametrize("missing", ["node", "handler"])
def test_a_recipe_naming_what_berth_lacks_constructs_and_its_start_fails(daemon, missing):
    name = unique("fp")
    if missing == "node":
        recipe = ping_recipe(name, nodes=("ping", "fpga_resize"))
        what = "fpga_resize"
    else:
        recipe = {"name": name, "graph": {"nodes": ["ping"]},
                  "handlers": {"get": "mymod.handle"}}
        what = "mymod.handle"
    construct(daemon, recipe)  # 201: another machine may have it

    r = daemon.post(f"/api/v1/recipes/{name}/start")
    message = assert_native_error(r, 500, code="start_failed", contains=(name, "DEAD", what))
    v = view(daemon, name)
    assert v["state"] == "DEAD" and what in v["message"], v
    assert all(n["pid"] == 0 for n in v["nodes"]), v["nodes"]
    (entry,) = [s for s in neptune_list(daemon) if s["name"] == name]
    assert entry["state"] == 0, entry
    critical = [n for n in notifications(daemon, name) if n["severity"] == "CRITICAL"]
    assert critical and what in critical[0]["message"], critical
    # Neptune's start says the same, with its 200 and a text.
    neptune_text(neptune(daemon, "GET", f"/services/start?id={name}"), name, "DEAD", what)
    assert message


# --- 7. construct / destruct / construct -----------------------------------------------------

def test_construct_destruct_construct_and_destructing_a_started_recipe_stops_it(daemon):
    name = unique("cd")
    construct(daemon, ping_recipe(name))
    r = daemon.delete(f"/api/v1/recipes/{name}")
    assert r.status_code == 200 and r.json() == {"destructed": name}, r.text
    assert_native_error(daemon.get(f"/api/v1/recipes/{name}"), 404, contains=name)
    assert name not in [v["name"] for v in daemon.get("/api/v1/recipes").json()["recipes"]]

    construct(daemon, ping_recipe(name, nodes=("passthrough", "ping")))
    v = start(daemon, name)
    pids = node_pids(v)
    assert_pong(call_ping(daemon, name))
    r = daemon.delete(f"/api/v1/recipes/{name}")
    assert r.status_code == 200, r.text
    wait_gone(pids, timeout=3)
    assert_native_error(daemon.get(f"/api/v1/recipes/{name}"), 404)
    r = serve(daemon, name)
    assert r.status_code == 404, r.text

    # And once more, straight away, started this time.
    construct(daemon, ping_recipe(name))
    v = start(daemon, name)
    assert_pong(call_ping(daemon, name))
    assert daemon.delete(f"/api/v1/recipes/{name}").status_code == 200
    wait_gone(node_pids(v), timeout=3)
    assert_native_error(daemon.delete(f"/api/v1/recipes/{name}"), 404, contains=name)


def test_recipes_started_and_stopped_at_the_same_time_keep_the_engine_answering(
        daemon_factory, short_data_dir):
    """Four callers start and stop four recipes at once: nodes end while others are cancelled.
    Every request must be answered; a stuck engine fails the test (and its daemon is killed
    here, its nodes reaped, so that nothing outlives the test)."""
    d = daemon_factory(data_dir=short_data_dir)
    names = [f"cc{i}" for i in range(4)]
    for n in names:
        construct(d, ping_recipe(n))
    problems, rounds = [], []
    deadline = time.monotonic() + 6

    def caller(n):
        try:
            while time.monotonic() < deadline and not problems:
                for action in ("start", "stop"):
                    r = d.post(f"/api/v1/recipes/{n}/{action}", timeout=10)
                    if r.status_code != 200:
                        problems.append(f"{action} {n}: {r.status_code} {r.text}")
                        return
                rounds.append(n)
        except requests.Timeout:
            problems.append(f"{n}: no answer within 10 s")
    threads = [threading.Thread(target=caller, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if any("no answer" in p for p in problems):
        d.kill9()
        reap_instances(d.data_dir)
        pytest.fail(f"the recipe engine stopped answering after {len(rounds)} start/stop "
                    f"rounds: {problems}")
    assert not problems, problems
    assert len(rounds) >= 8, rounds
    for n in names:
        v = view(d, n)
        assert v["state"] == "STOPPED" and all(p == 0 for p in node_pids(v)), v


# --- 8. persistence, Neptune's cache, reset --------------------------------------------------

def test_recipes_survive_restarts_cache_files_follow_them_and_reset_brings_the_default_back(
        daemon_factory, short_data_dir):
    d = daemon_factory(data_dir=short_data_dir)
    cache = short_data_dir / "neptune" / "recipes"
    assert [v["name"] for v in d.get("/api/v1/recipes").json()["recipes"]] == ["ping"]
    assert (cache / "recipe_ping.bak").exists()

    construct(d, ping_recipe("keep"))
    construct(d, ping_recipe("idle"))
    v = start(d, "keep")
    old = node_pids(v)
    for n in ("keep", "idle"):
        cached = json.loads((cache / f"recipe_{n}.bak").read_text())
        assert cached["name"] == n and cached["url"] == n, cached
        assert cached["graph"]["nodes"] == ["ping"], cached

    d.restart()
    wait_gone(old)
    v = wait_state(d, "keep", "STARTED", timeout=10)
    assert node_pids(v)[0] not in (0, *old)
    assert_pong(call_ping(d, "keep"))
    assert view(d, "idle")["state"] == "STOPPED"
    assert view(d, "ping")["state"] == "STOPPED"
    assert sorted(v["name"] for v in d.get("/api/v1/recipes").json()["recipes"]) == [
        "idle", "keep", "ping"]

    # Destruct removes the cache file; a destroyed default stays destroyed across a restart.
    assert d.delete("/api/v1/recipes/idle").status_code == 200
    assert not (cache / "recipe_idle.bak").exists()
    assert d.delete("/api/v1/recipes/ping").status_code == 200
    assert not (cache / "recipe_ping.bak").exists()
    pids = node_pids(view(d, "keep"))
    d.restart()
    wait_gone(pids)
    assert [v["name"] for v in d.get("/api/v1/recipes").json()["recipes"]] == ["keep"]
    running = node_pids(wait_state(d, "keep", "STARTED", timeout=10))

    # Reset: only the default ping, stopped; what ran is stopped.
    r = d.post("/api/v1/recipes/reset")
    assert r.status_code == 200, r.text
    assert [(x["name"], x["state"]) for x in r.json()["recipes"]] == [("ping", "STOPPED")]
    wait_gone(running, timeout=3)
    assert sorted(p.name for p in cache.iterdir()) == ["recipe_ping.bak"]
    d.restart()
    assert [x["name"] for x in d.get("/api/v1/recipes").json()["recipes"]] == ["ping"]
    start(d, "ping")
    assert_pong(call_ping(d, "ping"))
    stop(d, "ping")


# --- 9. hand-written Neptune cache files -----------------------------------------------------

def neptune_cache_recipe(name):
    return {"name": name, "url": name + "u",
            "graph": {"nodes": ["passthrough", "ping"],
                      "edges": [tup(-1, 0, None), tup(0, 1, None), tup(1, -1, None)]},
            "args": [{"shape": tup(2, 3), "model": None}, {}],
            "handlers": {"get": ["handlers.ping_handler"]}}


def test_hand_written_neptune_cache_files_are_the_default_projects_recipes(
        daemon_factory, short_data_dir):
    cache = short_data_dir / "neptune" / "recipes"
    cache.mkdir(parents=True)
    (cache / "recipe_hand.bak").write_text(json.dumps(neptune_cache_recipe("hand")))
    (cache / "recipe_broken.bak").write_text("{not json")
    d = daemon_factory(data_dir=short_data_dir)
    (v,) = d.get("/api/v1/recipes").json()["recipes"]  # no default ping: the files decide
    assert v["name"] == "hand" and v["url"] == "handu" and v["state"] == "STOPPED", v
    assert [(e["source"], e["sink"]) for e in v["edges"]] == [
        ("START", "passthrough"), ("passthrough", "ping"), ("ping", "END")]
    r = neptune(d, "GET", "/services/query?service=hand")
    assert untuple(r.json()["args"]) == [{"shape": [2, 3], "model": None}, {}], r.json()
    start(d, "hand")
    r = neptune(d, "GET", "/serve/handu")
    assert r.status_code == 200, r.text
    assert_pong(r.json())
    stop(d, "hand")

    # With the daemon stopped, replace the files: only the new one's recipe remains.
    d.stop()
    (cache / "recipe_hand.bak").unlink()
    (cache / "recipe_other.bak").write_text(json.dumps(neptune_cache_recipe("other")))
    d.start()
    assert [v["name"] for v in d.get("/api/v1/recipes").json()["recipes"]] == ["other"]
    assert [s["name"] for s in neptune_list(d)] == ["other"]
    # The unreadable file is left alone, and the hand-written one keeps its tuples.
    assert (cache / "recipe_broken.bak").read_text() == "{not json"
    kept = json.loads((cache / "recipe_other.bak").read_text())
    assert kept["args"] == neptune_cache_recipe("other")["args"], kept


def test_neptune_cache_files_keep_tuples_and_tuple_hinted_edges(daemon):
    name = unique("tp")
    args = [{"size": tup(224, 224), "nested": {"pair": tup("a", tup(1, 2))}, "plain": [1, 2]}]
    r = neptune(daemon, "POST", "/services/construct",
                json={"name": name, "graph": {"nodes": ["ping"], "edges": [tup(-1, 0, None)]},
                      "args": args, "handlers": {"get": ["handlers.ping_handler"]}})
    neptune_text(r, name, "constructed")
    cached = json.loads((daemon.data_dir / "neptune" / "recipes" / f"recipe_{name}.bak")
                        .read_text())
    assert cached["name"] == name and cached["url"] == name, cached
    assert cached["graph"] == {"nodes": ["ping"], "edges": [tup(-1, 0, None)]}, cached
    assert cached["handlers"] == {"get": ["handlers.ping_handler"]}, cached
    # Tuples in args stay tuples for Neptune's tools; lists stay lists.
    assert cached["args"] == args, cached
    assert daemon.delete(f"/api/v1/recipes/{name}").status_code == 200
    assert not (daemon.data_dir / "neptune" / "recipes" / f"recipe_{name}.bak").exists()


# --- 10. invalid recipes ---------------------------------------------------------------------

def g(nodes, edges=(), **extra):
    return {"graph": {"nodes": list(nodes), "edges": list(edges)}, **extra}


A_LONE = [{"type": "ping", "name": "a"}, {"type": "passthrough", "name": "lone"}]
INVALID = [
    ("long-name", {"name": "abcdefghijkl", **g(["ping"])}, ["abcdefghijkl", "12"]),
    ("bad-chars", {"name": "a b", **g(["ping"])}, ["'a b'", "letters"]),
    ("long-url", {"name": "okname", "url": "u" * 12, **g(["ping"])}, ["url", "u" * 12]),
    ("edge-to-missing-name", g(["ping"], [[-1, "ping"], ["ping", "ghost"]]),
     ["edge 1", "ghost"]),
    ("edge-to-missing-index", g(["ping"], [[-1, 0], [0, 7]]), ["edge 1", "node 7"]),
    ("no-path-from-start", g(A_LONE, [[-1, "a"], ["a", -1], ["lone", -1]]),
     ["lone", "START"]),
    ("no-path-to-end", g(A_LONE, [[-1, "a"], [-1, "lone"], ["a", -1]]), ["lone", "END"]),
    ("duplicate-node-name", g([{"type": "ping", "name": "x"},
                               {"type": "passthrough", "name": "x"}]), ["'x'", "unique"]),
    ("bad-handler-method", g(["ping"], handlers={"delete": "ping"}), ["delete", "get"]),
    ("empty-handler-chain", g(["ping"], handlers={"get": []}), ["get", "empty"]),
    ("empty-nodes", g([]), ["nodes"]),
    ("no-graph", {"handlers": {"get": "ping"}}, ["graph"]),
    ("args-a-string", g(["ping"], args="fast"), ["args", "string"]),
    ("args-count", g(["ping", "passthrough"], args=[{}]), ["1 entries for 2 nodes"]),
    ("args-entry-not-object", g(["ping"], args=[5]), ["node 0", "ping", "object"]),
]


@pytest.mark.parametrize("case,recipe,fragments", INVALID, ids=[c[0] for c in INVALID])
def test_an_invalid_recipe_is_a_400_naming_the_problem(daemon, case, recipe, fragments):
    body = dict(recipe)
    body.setdefault("name", unique("bad"))
    r = daemon.post("/api/v1/recipes", json=body)
    assert_native_error(r, 400, contains=fragments)
    names = [v["name"] for v in daemon.get("/api/v1/recipes").json()["recipes"]]
    assert body["name"] not in names, names
    if len(body["name"]) < 12 and " " not in body["name"]:
        assert daemon.get(f"/api/v1/recipes/{body['name']}").status_code == 404


def test_a_taken_name_or_url_is_a_400_naming_it(daemon):
    name = unique("du")
    url = unique("url")
    first = construct(daemon, {"url": url, **ping_recipe(name)})
    r = daemon.post("/api/v1/recipes", json={"url": unique("url"), **ping_recipe(name)})
    assert_native_error(r, 400, contains=(f"'{name}'", "already"))
    other = unique("du")
    r = daemon.post("/api/v1/recipes", json={"url": url, **ping_recipe(other)})
    assert_native_error(r, 400, contains=(f"'{url}'", f"'{name}'"))
    assert daemon.get(f"/api/v1/recipes/{other}").status_code == 404
    assert view(daemon, name)["recipe"] == first["recipe"]


# --- 11. the Neptune dialect -----------------------------------------------------------------

def test_the_neptune_dialect_speaks_neptunes_paths_shapes_and_texts(daemon):
    name, url = unique("np"), unique("npu")
    args = [{"model": None,
             "opts": {"deep": {"list": [1, 2], "none": None}},
             "artifact": {"url": "http://example.invalid/m.onnx", "path": "models/m.onnx",
                          "key": "m1"},
             "size": tup(224, 224)},
            {"threshold": 0.5}]
    recipe = {"name": name, "url": url,
              "graph": {"nodes": tup("passthrough", "ping"),
                        "edges": [tup(-1, 0, None), tup(0, 1, None), tup(1, -1, None)]},
              "args": args,
              "handlers": {"get": ["handlers.ping_handler"], "post": ["handlers.json_handler"],
                           "patch": "forward"}}
    r = neptune(daemon, "POST", "/services/construct", json=recipe)
    neptune_text(r, name, "constructed", f"/serve/{url}")

    # The list: sorted by name, Neptune's integer states, urls relative to the dialect.
    services = neptune_list(daemon)
    assert [s["name"] for s in services] == sorted(s["name"] for s in services)
    native = {v["name"]: v for v in daemon.get("/api/v1/recipes").json()["recipes"]}
    assert {s["name"] for s in services} == set(native)
    for s in services:
        assert set(s) == {"name", "state", "url", "throughput"}, s
        assert s["state"] == NEPTUNE_STATES[native[s["name"]]["state"]], (s, native[s["name"]])
        assert s["url"] == "/serve/" + native[s["name"]]["url"], s
    (mine,) = [s for s in services if s["name"] == name]
    assert mine == {"name": name, "state": -1, "url": f"/serve/{url}", "throughput": 0}

    # query: the args kept as given (nulls, nested objects, artifacts, tuples); {} if unknown.
    r = neptune(daemon, "GET", f"/services/query?service={name}")
    assert r.status_code == 200, r.text
    assert untuple(r.json()) == {
        "args": untuple(args), "state": -1, "throughput": 0, "url": f"/serve/{url}"}, r.text
    r = neptune(daemon, "GET", "/services/query?service=nosuch")
    assert r.status_code == 200 and r.json() == {}, r.text

    # start by POST with JSON, serve by every method, stop by GET.
    r = neptune(daemon, "POST", "/services/start",
                json={"id": name, "args": {"ping": {"add": {"extra": 1}}}})
    neptune_text(r, name, "started")
    assert neptune(daemon, "GET", f"/services/query?service={name}").json()["state"] == 2
    r = neptune(daemon, "GET", f"/serve/{url}")
    assert r.status_code == 200, r.text
    assert_pong(r.json())
    r = neptune(daemon, "POST", f"/serve/{url}", json={"q": [1, 2]})
    assert r.status_code == 200, r.text
    assert r.json()["q"] == [1, 2] and abs(int(r.json()["pong"]) - time.time()) < 5, r.json()
    r = neptune(daemon, "PATCH", f"/serve/{url}", data={"field": "value"})
    assert r.status_code == 200, r.text
    assert r.json()["field"] == "value" and "pong" in r.json(), r.json()
    r = neptune(daemon, "GET", f"/services/start?id={name}")
    neptune_text(r, name, "not started", "already")
    neptune_text(neptune(daemon, "GET", f"/services/stop?id={name}"), name, "stopped")
    assert neptune(daemon, "GET", f"/services/query?service={name}").json()["state"] == -1
    r = neptune(daemon, "GET", f"/serve/{url}")
    assert r.status_code == 500 and f"{name} is not active" in r.text, r.text

    # start by GET ?id=; an unknown id is a 200 saying why.
    neptune_text(neptune(daemon, "GET", f"/services/start?id={name}"), name, "started")
    assert_pong(neptune(daemon, "GET", f"/serve/{url}").json())
    neptune_text(neptune(daemon, "GET", "/services/start?id=nosuch"),
                 "nosuch", "not started", "no recipe")
    neptune_text(neptune(daemon, "GET", "/services/stop?id=nosuch"), "nosuch", "not stopped")

    # A method the recipe has no handler for.
    other, other_url = unique("np"), unique("npu")
    neptune_text(neptune(daemon, "POST", "/services/construct",
                         json={"name": other, "url": other_url,
                               "graph": {"nodes": ["ping"], "edges": []},
                               "handlers": {"get": "handlers.ping_handler"}}), "constructed")
    r = neptune(daemon, "POST", f"/serve/{other_url}", json={})
    assert r.status_code == 405 and "POST" in r.text, r.text
    assert neptune(daemon, "GET", "/serve/nosuchurl").status_code == 404

    # destruct with form fields: a started recipe is stopped first.
    pids = node_pids(view(daemon, name))
    r = neptune(daemon, "POST", "/services/destruct", data={"url": url, "name": name})
    neptune_text(r, name, "destructed")
    wait_gone(pids, timeout=3)
    assert neptune(daemon, "GET", f"/services/query?service={name}").json() == {}
    assert name not in [s["name"] for s in neptune_list(daemon)]
    neptune_text(neptune(daemon, "POST", "/services/destruct", data={"url": url, "name": name}),
                 name, "not destructed")
    # ... or by url alone.
    neptune_text(neptune(daemon, "POST", "/services/destruct", data={"url": other_url}),
                 other, "destructed")
    assert neptune(daemon, "GET", f"/services/query?service={other}").json() == {}


# --- Python handlers ---------------------------------------------------------------------

HANDLERS = {
    "text.py": '''\
def upper(request, previous):
    return {"text": request.get("text", "").upper()}


def wrap(request, previous):
    return {"answer": previous, "asked": request}


def boom(request, previous):
    raise ValueError("no such thing")
''',
}


def test_python_handlers_chain_with_built_in_ones_and_their_failures_say_why(daemon):
    name = unique("py")
    construct(daemon, {"name": name, "url": name, "graph": {"nodes": ["ping"]},
                       "handlers": {"post": ["text.upper", "forward", "text.wrap"],
                                    "get": ["text.boom"]}})
    # Without a handlers bundle the start fails naming the handler and what to push.
    r = daemon.post(f"/api/v1/recipes/{name}/start")
    assert_native_error(r, 500, "start_failed", contains=("text.upper", "push-handlers"))
    r = daemon.put("/api/v1/handlers", data=node_bundle(HANDLERS))
    assert r.status_code == 200, r.text
    assert r.json()["digest"].startswith("sha256:")
    v = start(daemon, name)
    assert "Python handlers loaded" in v["message"], v
    assert [n["name"] for n in v["nodes"]] == ["ping", "handlers"], v["nodes"]
    # post: upper (Python) -> forward through the graph (ping adds pong) -> wrap (Python).
    r = serve(daemon, name, "POST", json={"text": "hi"})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["asked"] == {"text": "hi"}
    assert answer["answer"]["text"] == "HI"
    assert abs(int(answer["answer"]["pong"]) - time.time()) < 5
    # A handler that raises: 500 naming it and the exception.
    r = serve(daemon, name, "GET")
    assert r.status_code == 500
    assert "text.boom" in r.text and "ValueError: no such thing" in r.text, r.text
    stop(daemon, name)


def test_a_missing_python_function_fails_the_start_with_the_handlers_own_words(daemon):
    name = unique("pyx")
    r = daemon.put("/api/v1/handlers", data=node_bundle(HANDLERS))
    assert r.status_code == 200, r.text
    construct(daemon, {"name": name, "url": name, "graph": {"nodes": ["ping"]},
                       "handlers": {"get": ["text.nope"]}})
    r = daemon.post(f"/api/v1/recipes/{name}/start")
    assert_native_error(r, 500, "start_failed", contains=("text has no function nope",))
    assert view(daemon, name)["state"] == "DEAD"


def test_a_built_in_node_with_processes_works_in_that_many_worker_processes(daemon):
    name = unique("wk")
    construct(daemon, {"name": name, "url": name, "graph": {"nodes": ["ping"]},
                       "args": [{"processes": 2}], "handlers": {"get": "ping"}})
    v = start(daemon, name)
    pid = v["nodes"][0]["pid"]

    def workers():
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    kids = wait_until(lambda: len(workers()) == 2 and workers(), 5, "two worker processes")
    # Workers are the node's program exec'd afresh (not bare forks of a process with threads).
    for kid in kids:
        environ = Path(f"/proc/{kid}/environ").read_bytes().split(b"\0")
        assert f"BERTH_NODE_WORKER={pid}".encode() in environ
    ids = {call_ping(daemon, name)["id"] for _ in range(20)}
    assert len(ids) == 20, ids
    stop(daemon, name)
    wait_gone([pid, *kids])


# --- the README's recipe examples, as written ------------------------------------------------

def test_the_readmes_recipe_examples_run_as_written(daemon_factory, short_data_dir, tmp_path):
    """The shell blocks of the README's recipes section, in order, with its echo2.yaml, through
    the CLI against a fresh daemon; each command must succeed and the commented answers hold."""
    d = daemon_factory(data_dir=short_data_dir)
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Recipes (seed 003)"):readme.index("## Running services")]
    blocks = re.findall(r"```(\w+)\n(.*?)```", section, re.S)
    work = tmp_path / "readme"
    work.mkdir()
    commands = []
    for lang, body in blocks:
        if lang == "yaml" and body.startswith("# echo2.yaml"):
            (work / "echo2.yaml").write_text(body)
        elif lang == "sh":
            commands += [line for line in body.splitlines() if line.strip()]
    assert (work / "echo2.yaml").exists() and len(commands) >= 8, commands
    env = clean_env(BERTH_URL=d.url, BERTH_TOKEN=d.admin_token,
                    PATH=os.path.dirname(BERTH_BIN) + ":" + os.environ["PATH"])
    outputs = {}
    for line in commands:
        command = line.split("#")[0].strip()
        p = subprocess.run(["sh", "-c", command], cwd=work, env=env, capture_output=True,
                           text=True, timeout=60)
        assert p.returncode == 0, f"{command}: {p.stdout}{p.stderr}"
        outputs[command] = p.stdout
    assert "STARTED" in outputs["berth recipes start ping"]
    assert json.loads(outputs["berth recipes call ping"])["pong"].isdigit()
    answer = json.loads(outputs["""berth recipes call echo2 --data '{"text": "hi"}'"""])
    assert answer["text"] == "hi" and answer["pong"].isdigit(), answer
    assert "destructed" in outputs["berth recipes destruct echo2"]
