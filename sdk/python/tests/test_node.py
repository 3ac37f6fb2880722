"""berth.node: a node of a recipe graph, played against by a fake daemon.

The test is the daemon (src/graph/wire.h): it binds the graph's START as ZeroMQ PUB
sockets at ipc:// paths, starts the node as a real subprocess with BERTH_NODE, and reads
the node's output with a SUB socket as END. PUB/SUB drops what is sent before a
subscriber is connected (the slow joiner), so every graph first sends heartbeats on each
input until one comes back at END; only then is data sent.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

zmq = pytest.importorskip("zmq")

from berth.node import NODE_ENV, Message, Node, NodeError, parse_config  # noqa: E402
from support import PLATFORM_VARS, SDK_DIR  # noqa: E402

DEADLINE_S = 15.0


def compact(value) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


class Graph:
    """A fake daemon around one node subprocess: START sockets, END socket, heartbeats."""

    def __init__(self, workdir, script, inputs=1, args=None, index=0, name="ping"):
        self.dir = workdir
        self.ctx = zmq.Context()
        self.starts = []
        endpoints = []
        for k in range(inputs):
            s = self.ctx.socket(zmq.PUB)
            s.setsockopt(zmq.LINGER, 0)
            endpoint = f"ipc://{workdir}/start{k}"
            s.bind(endpoint)
            self.starts.append(s)
            endpoints.append(endpoint)
        self.output = f"ipc://{workdir}/0"
        self.end = self.ctx.socket(zmq.SUB)
        self.end.setsockopt(zmq.LINGER, 0)
        self.end.setsockopt(zmq.SUBSCRIBE, b"")
        self.end.connect(self.output)
        self.seq = 0
        self.index = index
        config = {"recipe": "test", "name": name, "index": index, "type": name,
                  "inputs": endpoints, "output": self.output, "args": args or {}}
        path = os.path.join(workdir, "node.py")
        with open(path, "w") as f:
            f.write(script)
        env = {k: v for k, v in os.environ.items() if k not in PLATFORM_VARS}
        env["PYTHONPATH"] = str(SDK_DIR)
        env[NODE_ENV] = json.dumps(config)
        self.log_path = os.path.join(workdir, "node.log")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([sys.executable, path], env=env, cwd=workdir,
                                     stdout=self._log, stderr=subprocess.STDOUT)

    # -- the daemon's side ---------------------------------------------------------

    def log(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def send(self, header, body, input=0):
        h = header.encode() if isinstance(header, str) else header
        b = body if isinstance(body, bytes) else compact(body) if not isinstance(body, str) \
            else body.encode()
        self.starts[input].send_multipart([h, b])

    def data(self, id, body, input=0):
        self.send("m" + str(id), body, input)

    def heartbeat(self, input=0, body=None):
        """Sends a heartbeat with the next sequence number; returns that number."""
        self.seq += 1
        self.send(f"h{self.seq}", body if body is not None else {"stats": {}}, input)
        return self.seq

    def recv(self, timeout_s):
        """The next (header, body) at END, or None after `timeout_s`."""
        if self.end.poll(int(timeout_s * 1000)):
            head, *rest = self.end.recv_multipart()
            return head, (rest[0] if rest else b"")
        return None

    def _check_alive(self, what):
        if self.proc.poll() is not None:
            raise AssertionError(f"the node exited ({self.proc.returncode}) {what}:\n"
                                 + self.log())

    def sync(self):
        """Heartbeats on each input until one comes back at END: all channels connected."""
        for k in range(len(self.starts)):
            first = self.seq + 1                # a heartbeat of this input's round
            deadline = time.monotonic() + DEADLINE_S
            while True:
                self._check_alive("before its channels connected")
                assert time.monotonic() < deadline, "no heartbeat came back:\n" + self.log()
                self.heartbeat(input=k)
                got = self.recv(0.05)
                if got is not None and got[0][:1] == b"h" and int(got[0][1:]) >= first:
                    break

    def next(self, kind=None, timeout_s=DEADLINE_S):
        """The next message at END whose header starts with `kind` (b"m", b"h"; None: any)."""
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self._check_alive(f"waiting for {kind!r}")
                raise AssertionError(f"no {kind!r} message at END within {timeout_s} s:\n"
                                     + self.log())
            got = self.recv(min(left, 0.2))
            if got is None:
                self._check_alive(f"waiting for {kind!r}")
                continue
            if kind is None or got[0][:1] == kind:
                return got

    def answer(self, timeout_s=DEADLINE_S):
        """The next data message: (id, body bytes)."""
        head, body = self.next(b"m", timeout_s)
        return head[1:].decode(), body

    def heartbeat_back(self, seq):
        """Waits for heartbeat `seq` at END; returns its parsed body. Older ones are skipped;
        a newer one first is an error (heartbeats keep their order on one channel)."""
        while True:
            head, body = self.next(b"h")
            got = int(head[1:])
            if got == seq:
                return json.loads(body)
            assert got < seq, f"heartbeat {got} came back before {seq}"

    def none_within(self, kind, timeout_s):
        """Asserts no message starting with `kind` arrives within `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            got = self.recv(left)
            if got is not None:
                assert got[0][:1] != kind, f"unexpected {got!r}"

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=DEADLINE_S)
        self._log.close()
        for s in [*self.starts, self.end]:
            s.close(linger=0)
        self.ctx.term()


@pytest.fixture
def graph():
    """graph(script, inputs=1, args={...}, index=0) starts a node and syncs with it."""
    started = []
    # ipc:// paths must stay short (sun_path is ~107 bytes): a dir of its own under /tmp
    workdir = tempfile.mkdtemp(prefix="berth-node-", dir="/tmp")

    def start(script, sync=True, **kw):
        d = os.path.join(workdir, str(len(started)))
        os.mkdir(d)
        g = Graph(d, script, **kw)
        started.append(g)
        if sync:
            g.sync()
        return g

    yield start
    for g in started:
        g.close()
    shutil.rmtree(workdir, ignore_errors=True)


def alive(pid) -> bool:
    """True while `pid` runs (a zombie nobody reaped counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def wait_gone(pids, timeout_s=5.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not any(alive(p) for p in pids):
            return
        time.sleep(0.05)
    raise AssertionError(f"still running after {timeout_s} s: "
                         f"{[p for p in pids if alive(p)]}")


PING = '''
import os
from berth.node import Node

node = Node.from_environment()

def work(message):
    d = message.object()
    if d.get("drop"):
        return None                       # nothing published
    if "text" in d:
        return "text:" + d["text"]        # a str is published as it is
    return {"pong": d, "pid": os.getpid()}

node.run(work)
'''


# -- run(work) ----------------------------------------------------------------------

def test_run_answers_each_message_with_its_id_and_the_work_result(graph):
    g = graph(PING)
    g.data("r1", {"n": 1})
    assert g.answer() == ("r1", compact({"pong": {"n": 1}, "pid": g.proc.pid}))
    g.data("r-2", "not json at all")
    id, body = g.answer()
    assert id == "r-2"
    assert json.loads(body) == {"pong": {"data": "not json at all"}, "pid": g.proc.pid}
    g.data("r3", [1, 2])
    assert json.loads(g.answer()[1])["pong"] == {"data": [1, 2]}
    g.data("r4", {"text": "hi"})
    assert g.answer() == ("r4", b"text:hi")


def test_a_none_result_publishes_nothing(graph):
    g = graph(PING)
    g.data("a", {"drop": True})
    g.data("b", {"drop": True})
    g.data("c", {"n": 3})
    # the first data message out answers c: a and b were dropped
    assert g.answer() == ("c", compact({"pong": {"n": 3}, "pid": g.proc.pid}))
    g.none_within(b"m", 0.2)


# -- heartbeats -----------------------------------------------------------------------

def test_heartbeats_are_forwarded_once_each_with_the_counts_read_per_input(graph):
    g = graph(PING, index=2)
    for n in range(3):
        g.data(f"x{n}", {"n": n})
    assert [g.answer()[0] for _ in range(3)] == ["x0", "x1", "x2"]

    s = g.heartbeat(body={"stats": {"0": [7], "1": [4]}})
    # the node's own counters are added under its index; others' are kept
    assert g.heartbeat_back(s) == {"stats": {"0": [7], "1": [4], "2": [3]}, "up": {"2": [True]}}

    g.send(f"h{s}", {"stats": {}})          # the same sequence number again
    g.send(f"h{s - 1}", {"stats": {}})      # a lower one
    g.send("h0", {"stats": {}})
    t = g.heartbeat(body=b"not json")       # a new one with a body that is no object
    g.data("x3", {"n": 3})                  # data still flows
    # heartbeat s came back above, and everything before it: only t and x3 may follow
    head, body = g.next()
    assert (head, json.loads(body)) == (f"h{t}".encode(),
                                        {"stats": {"2": [3]}, "up": {"2": [True]}})
    assert g.answer(0.5)[0] == "x3"
    u = g.heartbeat(body={"stats": "nope", "extra": 1})
    assert g.heartbeat_back(u) == {"stats": {"2": [4]}, "up": {"2": [True]}, "extra": 1}


def test_a_heartbeat_with_a_garbled_sequence_number_is_dropped(graph):
    g = graph(PING)
    g.send("hx", {"stats": {}})
    g.send("h", {"stats": {}})
    g.send(b"", b"")
    g.send("z1", b"{}")                     # neither data nor heartbeat
    s = g.heartbeat()
    assert g.heartbeat_back(s) == {"stats": {"0": [0]}, "up": {"0": [True]}}
    g.data("ok", {"n": 1})
    assert g.answer()[0] == "ok"


# -- several inputs -------------------------------------------------------------------

TWO_INPUTS = '''
from berth.node import Node

node = Node.from_environment()
assert node.inputs == 2
while True:
    b = node.get(1)
    a = node.get(0)
    node.put(b, {"input": 1, "body": b.data()})
    node.put(a, {"input": 0, "body": a.data()})
'''


def test_messages_of_an_input_not_being_read_are_kept_in_order(graph):
    g = graph(TWO_INPUTS, inputs=2, index=1)
    for n in (1, 2, 3):
        g.data(f"a{n}", {"a": n}, input=0)
    # a heartbeat behind them on input 0 shows the node has read all three, into pending
    s = g.heartbeat(input=0)
    assert g.heartbeat_back(s) == {"stats": {"1": [3, 0]}, "up": {"1": [True, True]}}
    g.none_within(b"m", 0.1)                # blocked in get(1): nothing answered yet

    g.data("b1", {"b": 1}, input=1)
    assert [g.answer() for _ in range(2)] == [
        ("b1", compact({"input": 1, "body": {"b": 1}})),
        ("a1", compact({"input": 0, "body": {"a": 1}}))]
    g.data("b2", {"b": 2}, input=1)
    g.data("b3", {"b": 3}, input=1)
    g.data("b4", {"b": 4}, input=1)
    assert [g.answer()[0] for _ in range(4)] == ["b2", "a2", "b3", "a3"]
    g.none_within(b"m", 0.1)                # b4 read, waiting for input 0
    g.data("a4", {"a": 4}, input=0)
    assert [g.answer()[0] for _ in range(2)] == ["b4", "a4"]
    t = g.heartbeat(input=1)
    assert g.heartbeat_back(t) == {"stats": {"1": [4, 4]}, "up": {"1": [True, True]}}


# -- timeout --------------------------------------------------------------------------

TIMEOUT = '''
import time
from berth.node import Node

node = Node.from_environment()
try:
    node.get(5)
    bad_index = "no error"
except IndexError as e:
    bad_index = str(e)
while True:
    t = time.monotonic()
    m = node.get(0)
    elapsed_ms = (time.monotonic() - t) * 1000
    if m is None:
        node.publish("timeout", {"elapsed_ms": elapsed_ms, "timeout": node.timeout,
                                 "bad_index": bad_index})
    else:
        node.put(m, {"got": m.data()})
'''


def test_get_returns_none_after_the_timeout_without_data(graph):
    g = graph(TIMEOUT, args={"timeout": 100}, name="waiter")
    for _ in range(3):
        id, body = g.answer()
        assert id == "timeout"
        d = json.loads(body)
        assert d["timeout"] == 100
        assert 90 <= d["elapsed_ms"] < 3000
        assert d["bad_index"] == "node waiter has 1 input(s); no input 5"
    g.data("d1", {"n": 1})
    while (a := g.answer())[0] == "timeout":
        pass
    assert a == ("d1", compact({"got": {"n": 1}}))


# -- worker processes -----------------------------------------------------------------

WORKERS = '''
import os, time
from berth.node import Node

node = Node.from_environment()

def work(message):
    time.sleep(0.01)
    return {"pid": os.getpid(), "ppid": os.getppid(), "n": message.object()["n"]}

node.run(work)
'''


def _answers_from_two_workers(g):
    """Sends waves of messages until answers came from two workers; checks every answer."""
    pids, sent = set(), 0
    deadline = time.monotonic() + DEADLINE_S
    while len(pids) < 2:
        assert time.monotonic() < deadline, f"answers came only from {pids}"
        ids = {f"w{sent + k}": sent + k for k in range(10)}
        for id, n in ids.items():
            g.data(id, {"n": n})
        sent += len(ids)
        answers = dict(g.answer() for _ in range(len(ids)))
        assert set(answers) == set(ids)
        for id, body in answers.items():
            d = json.loads(body)
            assert d["n"] == ids[id]
            assert d["ppid"] == g.proc.pid
            assert d["pid"] != g.proc.pid
            pids.add(d["pid"])
    assert len(pids) == 2
    return pids, sent


def test_processes_answer_from_forked_workers_and_die_with_the_node(graph):
    g = graph(WORKERS, args={"processes": 2})
    pids, sent = _answers_from_two_workers(g)
    assert all(alive(p) for p in pids)
    s = g.heartbeat()
    assert g.heartbeat_back(s) == {"stats": {"0": [sent]}, "up": {"0": [True]}}

    g.proc.send_signal(signal.SIGTERM)
    assert g.proc.wait(timeout=DEADLINE_S) == 0
    wait_gone(pids)


def test_workers_exit_by_themselves_when_the_node_is_killed(graph):
    g = graph(WORKERS, args={"processes": 2})
    pids, _ = _answers_from_two_workers(g)
    g.proc.kill()                            # no handler runs: workers notice the new parent
    g.proc.wait(timeout=DEADLINE_S)
    wait_gone(pids)


# -- configuration --------------------------------------------------------------------

GOOD = {"recipe": "r", "name": "n", "index": 3, "type": "t",
        "inputs": ["ipc:///tmp/x/start"], "output": "ipc:///tmp/x/0", "args": {}}


def config(**changes):
    c = json.loads(json.dumps(GOOD))
    for key, value in changes.items():
        if value is None:
            c.pop(key, None)
        else:
            c[key] = value
    return json.dumps(c)


def test_a_good_config_gets_defaults():
    c = parse_config(config(args=None, index=None))
    assert (c["args"], c["index"], c["timeout"], c["processes"]) == ({}, 0, -1, 0)
    c = parse_config(config(args={"timeout": 250, "processes": 4, "k": "v"}))
    assert (c["timeout"], c["processes"], c["args"]["k"], c["index"]) == (250, 4, "v", 3)
    assert parse_config(config(args={"timeout": None, "processes": None}))["timeout"] == -1
    assert parse_config(config(args={"processes": 256}))["processes"] == 256
    assert parse_config(config(args={"timeout": -7}))["timeout"] == -1  # as berth's C++ nodes
    assert parse_config(config(inputs=[]))["inputs"] == []


def test_a_missing_environment_variable_is_a_node_error(monkeypatch):
    monkeypatch.delenv(NODE_ENV, raising=False)
    with pytest.raises(NodeError, match="BERTH_NODE is not set"):
        Node.from_environment()


def test_from_environment_reports_a_bad_config(monkeypatch):
    monkeypatch.setenv(NODE_ENV, "{not json")
    with pytest.raises(NodeError, match="BERTH_NODE is not a JSON object"):
        Node.from_environment()
    monkeypatch.setenv(NODE_ENV, config(output=None))
    with pytest.raises(NodeError, match="'output' must be a string"):
        Node.from_environment()


@pytest.mark.parametrize("text, field", [
    ("", "BERTH_NODE is not a JSON object"),
    ("[1, 2]", "BERTH_NODE is not a JSON object"),
    ('"ping"', "BERTH_NODE is not a JSON object"),
    (config(output=None), "'output' must be a string"),
    (config(output=7), "'output' must be a string"),
    (config(recipe=None), "'recipe' must be a string"),
    (config(name=["n"]), "'name' must be a string"),
    (config(type=None), "'type' must be a string"),
    (config(inputs=None), "'inputs' must be a list"),
    (config(inputs="ipc:///tmp/x/start"), "'inputs' must be a list"),
    (config(inputs={"0": "ipc:///tmp/x/start"}), "'inputs' must be a list"),
    (config(inputs=["ipc:///tmp/x/start", 2]), "'inputs' must be a list of endpoints"),
    (config(args={"timeout": "x"}), "args 'timeout'"),
    (config(args={"timeout": True}), "args 'timeout'"),
    (config(args={"timeout": [100]}), "args 'timeout'"),
    (config(args={"timeout": 1.5e95}), "args 'timeout'"),
    (config(args={"timeout": 2147483648}), "args 'timeout'"),
    (config(args={"processes": -1}), "args 'processes'"),
    (config(args={"processes": 1000}), "args 'processes'"),
    (config(args={"processes": 257}), "args 'processes'"),
    (config(args={"processes": "2"}), "args 'processes'"),
    (config(args={"processes": True}), "args 'processes'"),
])
def test_a_bad_config_is_a_node_error_naming_the_field(text, field):
    with pytest.raises(NodeError) as e:
        parse_config(text)
    assert field in str(e.value)


def test_a_timeout_that_is_no_finite_number_is_a_node_error():
    # Python's json reads NaN, Infinity and overflowing numbers as floats
    for raw in ("NaN", "Infinity", "1e999"):
        text = config(args={}).replace('"args": {}', '"args": {"timeout": %s}' % raw)
        assert raw in text
        with pytest.raises(NodeError, match="args 'timeout'"):
            parse_config(text)


# -- Message --------------------------------------------------------------------------

@pytest.mark.parametrize("body, data, obj", [
    ('{"a": 1}', {"a": 1}, {"a": 1}),
    ("[1, 2]", [1, 2], {"data": [1, 2]}),
    ('"s"', "s", {"data": "s"}),
    ("42", 42, {"data": 42}),
    ("null", None, {"data": None}),
    ("plain text", "plain text", {"data": "plain text"}),
    ("", "", {"data": ""}),
])
def test_message_data_and_object(body, data, obj):
    m = Message("id1", body)
    assert m.id == "id1"
    assert m.data() == data
    assert m.object() == obj
