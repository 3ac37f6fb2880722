"""`python3 -m berth.notebook IN OUT`: notebook steps run in a real ipykernel."""

import json
import os
import signal
import subprocess
import sys

import pytest

from support import SDK_DIR, Process

pytest.importorskip("nbclient", reason="nbclient is not installed (Debian: python3-nbclient); "
                                       "notebook steps cannot run here")
pytest.importorskip("ipykernel", reason="ipykernel is not installed (Debian: "
                                        "python3-ipykernel); notebook steps cannot run here")

TIMEOUT_S = 120


def notebook(*sources):
    """A v4 notebook with one code cell per source (plus a markdown cell first)."""
    cells = [{"cell_type": "markdown", "metadata": {}, "source": "# a step"}]
    for source in sources:
        cells.append({"cell_type": "code", "metadata": {}, "execution_count": None,
                      "outputs": [], "source": source})
    return {"nbformat": 4, "nbformat_minor": 5, "cells": cells,
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                        "language": "python"}}}


@pytest.fixture
def step(tmp_path, monkeypatch):
    """The environment the daemon gives a notebook step `nb` of a one-step pipeline."""
    pipeline = {"name": "p", "uuid": "pipe-1", "parameters": {"who": "world"},
                "steps": {"nb": {"uuid": "nb", "title": "Notebook", "file_path": "step.ipynb",
                                 "incoming_connections": [], "parameters": {"rate": 0.25}}}}
    (tmp_path / "pipeline.json").write_text(json.dumps(pipeline))
    out = tmp_path / "outputs"
    out.mkdir()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ORCHEST_", "BERTH_"))}
    env.update({"PYTHONPATH": str(SDK_DIR),
                "ORCHEST_PIPELINE_PATH": str(tmp_path / "pipeline.json"),
                "ORCHEST_STEP_UUID": "nb", "BERTH_STEP": "nb", "BERTH_RUN": "run-1",
                "ORCHEST_SESSION_TYPE": "noninteractive",
                "BERTH_STEP_OUTPUT_DIR": str(out), "BERTH_STEP_INPUTS": "[]"})
    return env


def run_notebook(tmp_path, env, nb, name="step.ipynb"):
    path = tmp_path / name
    path.write_text(nb if isinstance(nb, str) else json.dumps(nb))
    done = subprocess.run([sys.executable, "-m", "berth.notebook", str(path),
                           str(tmp_path / "out.ipynb")], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=TIMEOUT_S)
    return done


def cell_outputs(tmp_path):
    """The outputs of each code cell of the executed notebook, texts joined."""
    executed = json.loads((tmp_path / "out.ipynb").read_text())
    cells = []
    for cell in executed["cells"]:
        if cell["cell_type"] == "code":
            for out in cell["outputs"]:
                for key in ("text", "data"):
                    if isinstance(out.get(key), list):
                        out[key] = "".join(out[key])
                if "data" in out and isinstance(out["data"].get("text/plain"), list):
                    out["data"]["text/plain"] = "".join(out["data"]["text/plain"])
            cells.append(cell["outputs"])
    return cells


def test_a_notebook_runs_with_the_step_environment(tmp_path, step):
    done = run_notebook(tmp_path, step, notebook(
        "import os, sys\nprint('hello from cell 1')\nprint('to stderr', file=sys.stderr)",
        "import orchest\nrate = orchest.get_step_param('rate')\n"
        "print('rate is', rate, 'in', os.getcwd())\n"
        "orchest.output({'rate': rate, 'who': orchest.get_pipeline_param('who')}, "
        "name='result')\nrate * 4"))
    assert done.returncode == 0, done.stderr
    assert "hello from cell 1\n" in done.stdout
    assert f"rate is 0.25 in {tmp_path}\n" in done.stdout
    assert "to stderr\n" in done.stderr
    assert "Debugger warning" not in done.stderr and "Warning" not in done.stderr
    first, second = cell_outputs(tmp_path)
    assert {"output_type": "stream", "name": "stdout", "text": "hello from cell 1\n"} in first
    assert second[-1]["output_type"] == "execute_result"
    assert second[-1]["data"]["text/plain"] == "1.0"
    result = json.loads((tmp_path / "outputs" / "result.json").read_text())
    assert result == {"rate": 0.25, "who": "world"}
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


def test_a_failing_cell_exits_1_and_still_writes_the_notebook(tmp_path, step):
    nb = notebook("print('before the failure')",
                  "def check(x):\n    raise ValueError(f'bad value {x}')\ncheck(42)",
                  "print('never printed')")
    # outputs saved by an earlier session must not show up as this run's
    nb["cells"][3]["outputs"] = [{"output_type": "stream", "name": "stdout",
                                  "text": "stale\n"}]
    nb["cells"][3]["execution_count"] = 7
    done = run_notebook(tmp_path, step, nb)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "before the failure" in done.stdout
    assert "never printed" not in done.stdout
    assert "cell 3 of 4 raised ValueError: bad value 42" in done.stderr
    assert "check(42)" in done.stderr and "\x1b[" not in done.stderr  # traceback, no colours
    first, second, third = cell_outputs(tmp_path)
    assert first[0]["text"] == "before the failure\n"
    assert second[-1]["output_type"] == "error" and second[-1]["ename"] == "ValueError"
    assert third == []


def test_a_cell_tagged_raises_exception_does_not_stop_the_run(tmp_path, step):
    nb = notebook("raise KeyError('expected')", "print('still running')", "1/0")
    nb["cells"][1]["metadata"]["tags"] = ["raises-exception"]
    done = run_notebook(tmp_path, step, nb)
    assert done.returncode == 1
    assert "still running" in done.stdout
    assert "cell 4 of 4 raised ZeroDivisionError" in done.stderr
    assert "KeyError" not in done.stderr


def test_a_dying_kernel_exits_1(tmp_path, step):
    done = run_notebook(tmp_path, step, notebook("print('about to die', flush=True)",
                                                 "import os\nos._exit(3)", "print('no')"))
    assert done.returncode == 1
    assert "berth.notebook: the kernel died" in done.stderr
    assert cell_outputs(tmp_path)[0][0]["text"] == "about to die\n"


def test_sigterm_stops_the_run_and_writes_what_ran(tmp_path, step):
    path = tmp_path / "long.ipynb"
    path.write_text(json.dumps(notebook("print('started', flush=True)",
                                        "import time\nprint('long cell', flush=True)\n"
                                        "time.sleep(120)")))
    p = Process([sys.executable, "-m", "berth.notebook", str(path), str(tmp_path / "out.ipynb")],
                step, tmp_path)
    try:
        p.wait_line("long cell")
        assert p.stop(signal.SIGTERM) == 1, "\n".join(p.lines)
    finally:
        if p.proc.poll() is None:
            p.proc.kill()
            p.proc.wait()
    assert any("stopped by a signal (SIGTERM or SIGINT) while cell 3 of 3 was running" in line
               for line in p.lines), "\n".join(p.lines)
    assert not any("Task was destroyed" in line for line in p.lines), "\n".join(p.lines)
    first, second = cell_outputs(tmp_path)
    assert first[0]["text"] == "started\n" and second[0]["text"] == "long cell\n"


def test_cell_output_is_streamed_while_the_cell_runs(tmp_path, step):
    flag = tmp_path / "go"
    nb = notebook(
        "import os, time\nprint('waiting for go', flush=True)\n"
        f"deadline = time.time() + 60\n"
        f"while not os.path.exists({str(flag)!r}) and time.time() < deadline:\n"
        "    time.sleep(0.05)\nprint('went' if os.path.exists(%r) else 'timed out')" % str(flag))
    path = tmp_path / "wait.ipynb"
    path.write_text(json.dumps(nb))
    p = Process([sys.executable, "-m", "berth.notebook", str(path), str(tmp_path / "out.ipynb")],
                step, tmp_path)
    try:
        p.wait_line("waiting for go")  # seen before the cell ends: it only ends after `go`
        flag.write_text("")
        p.wait_line("went")
        assert p.stop(sig=None) == 0, "\n".join(p.lines)
    finally:
        if p.proc.poll() is None:
            p.proc.kill()
            p.proc.wait()


def test_a_cell_timeout_can_be_set(tmp_path, step):
    step["BERTH_NOTEBOOK_CELL_TIMEOUT"] = "1"
    done = run_notebook(tmp_path, step, notebook("import time\ntime.sleep(30)"))
    assert done.returncode == 1
    assert "longer than BERTH_NOTEBOOK_CELL_TIMEOUT=1 seconds" in done.stderr
    assert (tmp_path / "out.ipynb").exists()


def test_a_bad_timeout_is_refused(tmp_path, step):
    step["BERTH_NOTEBOOK_CELL_TIMEOUT"] = "soon"
    done = run_notebook(tmp_path, step, notebook("1"))
    assert done.returncode == 2
    assert "BERTH_NOTEBOOK_CELL_TIMEOUT='soon' is not a positive number" in done.stderr


@pytest.mark.parametrize("content, message", [
    ("this is not json", "is not a valid notebook"),
    (json.dumps({"cells": "nope"}), "is not a valid notebook"),
    (None, "No such file or directory"),
])
def test_an_unreadable_notebook_exits_2(tmp_path, step, content, message):
    if content is None:
        done = subprocess.run([sys.executable, "-m", "berth.notebook",
                               str(tmp_path / "missing.ipynb"), str(tmp_path / "out.ipynb")],
                              env=step, cwd=tmp_path, capture_output=True, text=True,
                              timeout=TIMEOUT_S)
    else:
        done = run_notebook(tmp_path, step, content, name="bad.ipynb")
    assert done.returncode == 2
    assert "berth.notebook: cannot read notebook" in done.stderr and message in done.stderr
    assert not (tmp_path / "out.ipynb").exists()


def test_wrong_arguments_print_the_usage(tmp_path, step):
    done = subprocess.run([sys.executable, "-m", "berth.notebook", "only-one.ipynb"], env=step,
                          cwd=tmp_path, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert done.returncode == 2 and "usage: python3 -m berth.notebook IN.ipynb OUT.ipynb" \
        in done.stderr


def test_importing_berth_does_not_import_nbclient():
    done = subprocess.run([sys.executable, "-c", "import sys, berth, orchest; "
                           "print('nbclient' in sys.modules, 'berth.notebook' in sys.modules)"],
                          env={"PYTHONPATH": str(SDK_DIR)}, capture_output=True, text=True,
                          timeout=60)
    assert done.stdout.split() == ["False", "False"], done.stderr
