"""berth.node: write a node of a recipe graph in Python.

    from berth.node import Node

    node = Node.from_environment()          # BERTH_NODE, set by berth when it starts the node

    def work(message):
        data = message.object()
        data["seen"] = True
        return data                         # published as this node's output

    node.run(work)                          # reads input 0; args "processes" N: N workers

A node with several inputs reads them by index, in the order the recipe's edges into it were
added: `node.get(1)` waits for the next message of input 1. `node.args` holds the recipe's
arguments for the node (with the run's overrides); `timeout` (ms, -1 forever) bounds each
`get`. Sources publish messages of their own with `node.publish(id, body)` and call
`node.idle(seconds)` between them.

The wire protocol is berth's (src/graph/wire.h): every node publishes two-frame messages on one
ZeroMQ PUB socket; "m<id>" frames carry data, "h<seq>" frames heartbeats, which a node forwards
(once per input) while it reads its inputs, adding how many messages it read on each and which
inputs carried a heartbeat. Needs python3-zmq.
"""

import json
import math
import os
import signal
import sys
import time

import zmq

NODE_ENV = "BERTH_NODE"


class NodeError(Exception):
    """The node's configuration is missing or wrong."""


class Message:
    """One data message: the request it belongs to (`id`) and its JSON text (`body`)."""

    __slots__ = ("id", "body")

    def __init__(self, id, body):
        self.id = id
        self.body = body

    def data(self):
        """The body parsed as JSON (the text itself when it is not JSON)."""
        try:
            return json.loads(self.body)
        except ValueError:
            return self.body

    def object(self):
        """The body as a dict: itself when it is one, {"data": body} otherwise."""
        d = self.data()
        return d if isinstance(d, dict) else {"data": d}

    def __repr__(self):
        return f"Message(id={self.id!r}, body={self.body[:60]!r})"


def _encode(body):
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body, separators=(",", ":")).encode()


def parse_config(text):
    """Parses BERTH_NODE; NodeError naming the field that is wrong."""
    try:
        c = json.loads(text)
    except ValueError:
        raise NodeError(f"{NODE_ENV} is not a JSON object") from None
    if not isinstance(c, dict):
        raise NodeError(f"{NODE_ENV} is not a JSON object")
    for key in ("recipe", "name", "type", "output"):
        if not isinstance(c.get(key), str):
            raise NodeError(f"{NODE_ENV}: '{key}' must be a string")
    inputs = c.get("inputs")
    if not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs):
        raise NodeError(f"{NODE_ENV}: 'inputs' must be a list of endpoints")
    args = c.get("args") if isinstance(c.get("args"), dict) else {}
    c["args"] = args
    c.setdefault("index", 0)
    timeout = args.get("timeout", -1)
    if timeout is None:
        timeout = -1
    if (not isinstance(timeout, (int, float)) or isinstance(timeout, bool)
            or not math.isfinite(timeout) or timeout > 2147483647):
        raise NodeError("args 'timeout' must be a number of milliseconds up to 2147483647 "
                        "(-1: wait forever)")
    processes = args.get("processes", 0) or 0
    if (not isinstance(processes, (int, float)) or isinstance(processes, bool)
            or not 0 <= processes <= 256):
        raise NodeError("args 'processes' must be a number from 0 to 256 "
                        "(0: work in the node's own process)")
    c["timeout"] = -1 if timeout < 0 else int(timeout)
    c["processes"] = int(processes)
    return c


class Node:
    """A node's channels: its inputs (SUB), its output (PUB), heartbeats and counters."""

    def __init__(self, config):
        self.config = config
        self.name = config["name"]
        self.index = int(config.get("index", 0))
        self.args = config["args"]
        self.timeout = config["timeout"]
        self._ctx = zmq.Context()
        self._out = self._ctx.socket(zmq.PUB)
        self._out.setsockopt(zmq.LINGER, 0)
        self._out.setsockopt(zmq.SNDHWM, 100000)
        self._out.bind(config["output"])
        self._inputs = []
        for endpoint in config["inputs"]:
            s = self._ctx.socket(zmq.SUB)
            s.setsockopt(zmq.LINGER, 0)
            s.setsockopt(zmq.RCVHWM, 100000)
            s.setsockopt(zmq.SUBSCRIBE, b"")
            s.connect(endpoint)
            self._inputs.append(s)
        self._poller = zmq.Poller()
        for s in self._inputs:
            self._poller.register(s, zmq.POLLIN)
        self._pending = [[] for _ in self._inputs]
        self._counts = [0 for _ in self._inputs]
        # Per input: the last heartbeat forwarded from it, and whether one ever came.
        self._last_heartbeat = [0 for _ in self._inputs]
        self._heartbeat_seen = [False for _ in self._inputs]

    @classmethod
    def from_environment(cls):
        text = os.environ.get(NODE_ENV)
        if text is None:
            raise NodeError(f"{NODE_ENV} is not set: nodes are started by berth for a recipe")
        return cls(parse_config(text))

    @property
    def inputs(self):
        return len(self._inputs)

    def _forward(self, header, body):
        self._out.send_multipart([header, body])

    def _poll_once(self, timeout_ms):
        events = dict(self._poller.poll(None if timeout_ms < 0 else timeout_ms))
        if not events:
            return False
        for i, s in enumerate(self._inputs):
            if s not in events:
                continue
            while True:
                try:
                    frames = s.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                head = frames[0]
                body = frames[1] if len(frames) > 1 else b""
                if head[:1] == b"h":
                    try:
                        seq = int(head[1:] or 0)
                    except ValueError:
                        continue  # no sequence number: dropped, as by the C++ node
                    if seq <= self._last_heartbeat[i]:
                        continue
                    self._last_heartbeat[i] = seq
                    self._heartbeat_seen[i] = True
                    try:
                        hb = json.loads(body)
                    except ValueError:
                        hb = {}
                    if not isinstance(hb, dict):
                        hb = {}
                    stats = hb.get("stats") if isinstance(hb.get("stats"), dict) else {}
                    stats[str(self.index)] = list(self._counts)
                    hb["stats"] = stats
                    up = hb.get("up") if isinstance(hb.get("up"), dict) else {}
                    up[str(self.index)] = list(self._heartbeat_seen)
                    hb["up"] = up
                    self._forward(head, json.dumps(hb).encode())
                elif head[:1] == b"m":
                    self._counts[i] += 1
                    self._pending[i].append(Message(head[1:].decode(), body.decode()))
        return True

    def get(self, i=0, timeout=None):
        """The next message of input `i`; None once `timeout` ms (default: args "timeout")
        passed without one."""
        if not 0 <= i < len(self._inputs):
            raise IndexError(f"node {self.name} has {len(self._inputs)} input(s); no input {i}")
        timeout = self.timeout if timeout is None else timeout
        deadline = None if timeout < 0 else time.monotonic() + timeout / 1000.0
        q = self._pending[i]
        while not q:
            wait = -1
            if deadline is not None:
                wait = int((deadline - time.monotonic()) * 1000)
                if wait < 0:
                    return None
            self._poll_once(wait)
        return q.pop(0)

    def put(self, to, body):
        """Publishes `body` (dict, list, str or bytes) as the answer to message `to`."""
        self.publish(to.id, body)

    def publish(self, id, body):
        """Publishes a message of a request of its own (sources)."""
        self._forward(b"m" + str(id).encode(), _encode(body))

    def idle(self, seconds):
        """For sources between messages: forwards heartbeats for up to `seconds`."""
        deadline = time.monotonic() + seconds
        while True:
            wait = int((deadline - time.monotonic()) * 1000)
            if wait <= 0:
                return
            self._poll_once(wait)
            for q in self._pending:
                q.clear()

    def run(self, work):
        """Reads input 0 forever; publishes what `work(message)` returns (None: nothing).
        With args "processes" N > 0, `work` runs in N forked worker processes."""
        if self.config["processes"] > 0 and self._inputs:
            return self._run_workers(work)
        while True:
            m = self.get(0)
            if m is None:
                continue
            out = work(m)
            if out is not None:
                self.put(m, out)

    def _run_workers(self, work):
        feed = self.config["output"] + ".w"
        results = self.config["output"] + ".r"
        children = []
        parent = os.getpid()
        for _ in range(self.config["processes"]):
            pid = os.fork()
            if pid == 0:
                _worker(feed, results, work, parent)
            children.append(pid)
        to_workers = self._ctx.socket(zmq.PUSH)
        from_workers = self._ctx.socket(zmq.PULL)
        for s in (to_workers, from_workers):
            s.setsockopt(zmq.LINGER, 0)
        to_workers.bind(feed)
        from_workers.bind(results)
        self._poller.register(from_workers, zmq.POLLIN)

        def stop(signum, frame):
            for pid in children:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            # Not sys.exit: the interpreter's exit would terminate the ZeroMQ context, which
            # waits for ever on a message still queued on a socket.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)

        signal.signal(signal.SIGTERM, stop)
        # A SIGTERM that lands after the interpreter's last check and before poll() blocks
        # would only set a flag: the wake-up pipe makes poll return so the handler runs.
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        os.set_blocking(wake_r, False)
        self._poller.register(wake_r, zmq.POLLIN)
        while True:
            while True:
                try:
                    id, body = from_workers.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                self._forward(b"m" + id, body)
            self._poll_once(-1)
            try:
                os.read(wake_r, 512)  # a signal with a handler that returned: drained
            except BlockingIOError:
                pass
            for m in self._pending[0]:
                to_workers.send_multipart([m.id.encode(), m.body.encode()])
            for q in self._pending:
                q.clear()


def _worker(feed, results, work, parent):
    # A forked worker: a ZeroMQ context never crosses a fork, so it makes its own.
    try:
        ctx = zmq.Context()
        pull = ctx.socket(zmq.PULL)
        push = ctx.socket(zmq.PUSH)
        pull.connect(feed)
        push.connect(results)
        while True:
            if not pull.poll(1000):
                if os.getppid() != parent:
                    os._exit(0)
                continue
            id, body = pull.recv_multipart()
            try:
                out = work(Message(id.decode(), body.decode()))
            except Exception as e:  # a bad message must not kill the worker
                print(f"berth.node worker: {e!r}", file=sys.stderr, flush=True)
                continue
            if out is not None:
                push.send_multipart([id, _encode(out)])
    finally:
        os._exit(1)
