"""The process that runs a recipe's Python handlers (`python3 -m berth.recipe_handlers`).

A recipe's handler chain may name functions of the project's handlers bundle (pushed with
`berth recipes push-handlers DIR`) as `module.function`: `bar.foo` is `foo` in `bar.py`.
A handler is called with the request's data (the JSON body, the form fields or the query, as
a dict) and the previous handler's result (None for the first), and returns the next result,
anything JSON can hold:

    # bar.py
    def foo(request, previous):
        return {"text": request.get("text", "").upper()}

berth starts this process with the recipe, with BERTH_HANDLERS = {"endpoint": "ipc://...",
"handlers": ["bar.foo", ...]}; it imports every handler first, so that a missing module or
function fails the start naming it. It answers [id, {"result": ...}] or [id, {"error": "..."}]
on a ZeroMQ ROUTER socket, and {"result": "ready"} to berth's {"hello": true}. Needs
python3-zmq.
"""

import importlib
import json
import os
import sys
import traceback

import zmq


def load(names):
    functions = {}
    for name in names:
        module_name, _, function_name = name.rpartition(".")
        try:
            module = importlib.import_module(module_name)
        except Exception as e:  # report and fail the start
            raise SystemExit(f"handler {name}: cannot import {module_name}: {e!r}") from None
        fn = getattr(module, function_name, None)
        if not callable(fn):
            raise SystemExit(f"handler {name}: {module_name} has no function {function_name}")
        functions[name] = fn
    return functions


def main():
    try:
        config = json.loads(os.environ["BERTH_HANDLERS"])
    except (KeyError, ValueError):
        raise SystemExit("BERTH_HANDLERS is not set: berth starts this process for a recipe")
    functions = load(config.get("handlers", []))
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind(config["endpoint"])
    print(f"handlers ready: {', '.join(sorted(functions))}", flush=True)
    while True:
        frames = sock.recv_multipart()
        if len(frames) < 3:
            continue
        peer, id, body = frames[0], frames[1], frames[2]
        try:
            msg = json.loads(body)
            fn = functions.get(msg.get("handler"))
            if msg.get("hello"):
                answer = {"result": "ready"}  # every handler is imported
            elif fn is None:
                answer = {"error": f"no handler {msg.get('handler')!r} is loaded"}
            else:
                answer = {"result": fn(msg.get("request"), msg.get("previous"))}
            out = json.dumps(answer)
        except Exception as e:
            traceback.print_exc(file=sys.stderr)
            out = json.dumps({"error": f"{type(e).__name__}: {e}"})
        sock.send_multipart([peer, id, out.encode()])


if __name__ == "__main__":
    main()
