"""Pipeline steps (seed 004): parameters from the frozen definition, outputs and
inputs between steps, and the `orchest` module that Orchest step code imports."""

import inspect
import json
import os
import pickle
import stat
import subprocess
import sys
from dataclasses import dataclass

import pytest

import berth
import orchest
from berth import PlatformError
from berth import steps
from berth.steps import InputNameCollisionError, NotAStepError, StepError
from support import SDK_DIR

STEP_VARS = ("ORCHEST_PIPELINE_PATH", "ORCHEST_STEP_UUID", "BERTH_STEP", "BERTH_RUN",
             "ORCHEST_PIPELINE_UUID", "ORCHEST_PROJECT_UUID", "ORCHEST_SESSION_UUID",
             "ORCHEST_SESSION_TYPE", "BERTH_STEP_OUTPUT_DIR", "BERTH_STEP_INPUTS")
NOT_A_STEP = "not running as a pipeline step (ORCHEST_PIPELINE_PATH is not set)"


@dataclass(frozen=True)
class Point:  # pickled, not JSON: a class
    x: int
    y: int


@pytest.fixture(autouse=True)
def no_step_env(monkeypatch):
    for name in STEP_VARS:
        monkeypatch.delenv(name, raising=False)


class Run:
    """A frozen pipeline on disk and a way to act as any of its steps."""

    def __init__(self, root, monkeypatch, pipeline):
        self.root = root
        self.monkeypatch = monkeypatch
        self.pipeline = pipeline
        self.path = root / "pipeline.json"
        self.path.write_text(json.dumps(pipeline))

    def out_dir(self, uuid):
        return self.root / "outputs" / uuid

    def become(self, uuid, inputs=None):
        """Sets the environment the daemon gives step `uuid`; returns its output dir.

        `inputs` overrides BERTH_STEP_INPUTS; by default one entry per incoming
        connection, with the parent's output dir (null when it has none yet).
        """
        step = self.pipeline["steps"][uuid]
        out = self.out_dir(uuid)
        out.mkdir(parents=True, exist_ok=True)
        if inputs is None:
            inputs = []
            for parent in step.get("incoming_connections", []):
                d = self.out_dir(parent)
                inputs.append({"step": parent, "dir": str(d) if d.is_dir() else None})
        env = {"ORCHEST_PIPELINE_PATH": str(self.path), "ORCHEST_STEP_UUID": uuid,
               "BERTH_STEP": uuid, "BERTH_RUN": "run-1", "ORCHEST_PIPELINE_UUID": "pipe-1",
               "ORCHEST_PROJECT_UUID": "proj-1", "ORCHEST_SESSION_UUID": "sess-1",
               "ORCHEST_SESSION_TYPE": "noninteractive", "BERTH_STEP_OUTPUT_DIR": str(out),
               "BERTH_STEP_INPUTS": json.dumps(inputs)}
        for k, v in env.items():
            self.monkeypatch.setenv(k, v)
        return out


def a_step(uuid, title, parents=(), params=None):
    return {"uuid": uuid, "title": title, "file_path": f"{title.lower()}.py",
            "incoming_connections": list(parents), "parameters": params or {},
            "environment": "python", "kernel": {"name": "python", "display_name": "Python 3"}}


@pytest.fixture
def run(tmp_path, monkeypatch):
    # a, b, c -> d, with d's incoming order c, a, b (not the uuids' order)
    pipeline = {
        "name": "etl", "uuid": "pipe-1", "version": "1.0",
        "parameters": {"source": "s3://bucket/x", "batch": 64},
        "steps": {
            "a": a_step("a", "Load", params={"rate": 0.5, "tags": ["x", "y"]}),
            "b": a_step("b", "Clean"),
            "c": a_step("c", "Fetch"),
            "d": a_step("d", "Train", parents=("c", "a", "b"), params={"epochs": 3}),
        },
    }
    return Run(tmp_path, monkeypatch, pipeline)


# -- parameters ---------------------------------------------------------------------

def test_parameters_come_from_the_frozen_pipeline_file(run):
    run.become("a")
    assert berth.get_params() == ({"rate": 0.5, "tags": ["x", "y"]},
                                  {"source": "s3://bucket/x", "batch": 64})
    assert berth.get_step_param("rate") == 0.5
    assert berth.get_step_param("missing") is None
    assert berth.get_step_param("missing", 7) == 7
    assert berth.get_pipeline_param("batch") == 64
    assert berth.get_pipeline_param("nope", "dflt") == "dflt"
    run.become("d")
    assert berth.get_step_param("epochs") == 3 and berth.get_step_param("rate") is None

    # the file is the only source: what it says is what the step gets
    frozen = json.loads(run.path.read_text())
    frozen["steps"]["d"]["parameters"]["epochs"] = 9
    run.path.write_text(json.dumps(frozen))
    assert berth.get_step_param("epochs") == 9


def test_returned_parameters_are_copies(run):
    run.become("a")
    step_params, _ = berth.get_params()
    step_params["tags"].append("z")
    assert berth.get_step_param("tags") == ["x", "y"]


def test_steps_and_pipelines_without_parameters_have_empty_ones(run):
    del run.pipeline["parameters"]
    del run.pipeline["steps"]["b"]["parameters"]
    run.path.write_text(json.dumps(run.pipeline))
    run.become("b")
    assert berth.get_params() == ({}, {})


def test_step_falls_back_to_berth_step_for_its_uuid(run, monkeypatch):
    run.become("a")
    monkeypatch.delenv("ORCHEST_STEP_UUID")
    assert berth.get_step_param("rate") == 0.5


def test_broken_definitions_are_clear_errors(run, monkeypatch):
    run.become("a")
    monkeypatch.setenv("ORCHEST_STEP_UUID", "zzz")
    with pytest.raises(StepError, match="step zzz .* is not in the pipeline definition"):
        berth.get_params()
    monkeypatch.setenv("ORCHEST_PIPELINE_PATH", str(run.root / "gone.json"))
    with pytest.raises(StepError, match="cannot read the pipeline definition"):
        berth.get_params()
    run.path.write_text("{not json")
    monkeypatch.setenv("ORCHEST_PIPELINE_PATH", str(run.path))
    with pytest.raises(StepError, match="is not valid JSON"):
        berth.get_step_param("rate")


def test_parameters_cannot_be_updated_from_a_step(run):
    run.become("a")
    with pytest.raises(StepError, match="freezes a run's parameters"):
        orchest.update_step_param("rate", 1)
    with pytest.raises(StepError, match="freezes"):
        orchest.update_params({"rate": 1}, {"batch": 2})
    assert berth.get_step_param("rate") == 0.5


def test_step_info(run):
    run.become("d")
    info = steps.step_info()
    assert info["step_uuid"] == "d" and info["title"] == "Train"
    assert info["run_uuid"] == "run-1" and info["session_type"] == "noninteractive"
    assert info["output_dir"] == str(run.out_dir("d"))


# -- outputs and inputs -------------------------------------------------------------

def test_json_and_pickle_round_trip(run):
    out = run.become("a")
    berth.output({"rows": [1, 2.5, "x", None, True], "nested": {"k": []}}, name="table")
    berth.output((1, 2), name="pair")
    berth.output(Point(3, 4), name="point")
    berth.output({1: "int key"}, name="intkeys")
    berth.output(float("nan"), name="nan")
    assert sorted(os.listdir(out)) == ["intkeys.pickle", "nan.pickle", "pair.pickle",
                                       "point.pickle", "table.json"]
    assert json.loads((out / "table.json").read_text())["nested"] == {"k": []}

    run.become("d")
    inputs = berth.get_inputs()
    assert inputs["table"] == {"rows": [1, 2.5, "x", None, True], "nested": {"k": []}}
    assert inputs["pair"] == (1, 2) and type(inputs["pair"]) is tuple
    assert inputs["point"] == Point(3, 4)
    assert inputs["intkeys"] == {1: "int key"}
    assert inputs["nan"] != inputs["nan"]  # NaN, kept by pickle
    assert inputs["unnamed"] == []


def test_named_and_unnamed_inputs_follow_the_incoming_order(run):
    run.become("a")
    berth.output("from a")  # unnamed
    berth.output([1, 2], name="a_list")
    run.become("b")
    berth.output({"b": 1}, name="b_dict")  # b has no unnamed output
    run.become("c")
    berth.output(("from", "c"))  # unnamed, pickled
    berth.output("c named", name="c_str")

    run.become("d")  # incoming order: c, a, b
    inputs = berth.get_inputs()
    assert inputs["unnamed"] == [("from", "c"), "from a"]
    assert {k: v for k, v in inputs.items() if k != "unnamed"} == {
        "a_list": [1, 2], "b_dict": {"b": 1}, "c_str": "c named"}
    assert list(inputs) == ["unnamed", "c_str", "a_list", "b_dict"]
    assert berth.get_inputs() == inputs  # outputs are never evicted: read as often as wanted


def test_parents_without_outputs_contribute_nothing(run):
    run.become("a")
    berth.output(1, name="one")
    run.become("d", inputs=[{"step": "c", "dir": None},
                            {"step": "a", "dir": str(run.out_dir("a"))},
                            {"step": "b", "dir": str(run.root / "never-made")}])
    assert berth.get_inputs() == {"unnamed": [], "one": 1}


def test_inputs_given_in_a_file_for_steps_with_many_parents(run, monkeypatch, tmp_path):
    run.become("a")
    berth.output(1, name="one")
    run.become("d")
    listing = tmp_path / "inputs.json"
    listing.write_text(json.dumps([{"step": "a", "dir": str(run.out_dir("a"))}]))
    monkeypatch.setenv("BERTH_STEP_INPUTS", "@" + str(listing))
    assert berth.get_inputs() == {"unnamed": [], "one": 1}
    monkeypatch.setenv("BERTH_STEP_INPUTS", "@" + str(tmp_path / "gone.json"))
    with pytest.raises(StepError, match="cannot read the step's inputs"):
        berth.get_inputs()


def test_a_step_without_parents_gets_empty_inputs(run):
    run.become("a")
    assert berth.get_inputs() == {"unnamed": []}


def test_same_name_from_two_parents_is_an_error_naming_both(run):
    run.become("a")
    berth.output(1, name="model")
    run.become("b")
    berth.output(2, name="model")
    run.become("c")
    berth.output(3, name="other")
    run.become("d")
    with pytest.raises(InputNameCollisionError) as e:
        berth.get_inputs()
    message = str(e.value)
    assert "'model'" in message and "'Load' (a)" in message and "'Clean' (b)" in message
    assert "other" not in message
    assert isinstance(e.value, PlatformError)
    assert orchest.error.InputNameCollisionError is InputNameCollisionError


def test_outputting_a_name_again_replaces_it_in_either_format(run):
    out = run.become("a")
    berth.output([1], name="x")
    berth.output({1, 2}, name="x")  # a set: pickled, the .json goes
    assert sorted(os.listdir(out)) == ["x.pickle"]
    berth.output("text", name="x")
    assert sorted(os.listdir(out)) == ["x.json"]
    berth.output("u1")
    berth.output(b"u2")
    assert sorted(os.listdir(out)) == ["_unnamed.pickle", "x.json"]
    run.become("d")
    assert berth.get_inputs() == {"unnamed": [b"u2"], "x": "text"}


@pytest.mark.parametrize("name", ["", "a/b", ".hidden", "_private", "_unnamed", "unnamed", 3,
                                  b"bytes"])
def test_invalid_output_names_are_value_errors(run, name):
    out = run.become("a")
    with pytest.raises(ValueError, match="output name"):
        berth.output(1, name=name)
    assert os.listdir(out) == []


def test_data_that_cannot_be_stored_leaves_no_file(run):
    out = run.become("a")
    berth.output(1, name="keep")
    with pytest.raises(TypeError, match="cannot write output 'bad'.*cannot be pickled"):
        berth.output(lambda: 1, name="bad")
    assert os.listdir(out) == ["keep.json"]


def test_outputs_are_written_atomically_with_normal_permissions(run):
    out = run.become("a")
    old = os.umask(0o022)
    try:
        berth.output(list(range(1000)), name="big")
        berth.output(Point(1, 2), name="obj")
    finally:
        os.umask(old)
    assert sorted(os.listdir(out)) == ["big.json", "obj.pickle"]  # no temporary files left
    for f in out.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o644


def test_unreadable_inputs_raise_unless_ignored(run):
    out = run.become("a")
    (out / "broken.pickle").write_bytes(b"not a pickle")
    (out / ".partial.json.1.ab.tmp").write_text("{")  # a writer's temporary file: skipped
    berth.output("fine")
    run.become("d")
    with pytest.raises(StepError, match="cannot read the output .*broken.pickle of step "
                                        "'Load' \\(a\\)"):
        berth.get_inputs()
    assert berth.get_inputs(ignore_failure=True) == {"unnamed": ["fine"], "broken": None}


def test_malformed_inputs_variable(run, monkeypatch):
    run.become("d")
    monkeypatch.setenv("BERTH_STEP_INPUTS", '{"step": "a"}')
    with pytest.raises(StepError, match="BERTH_STEP_INPUTS must be a JSON list"):
        berth.get_inputs()
    monkeypatch.setenv("BERTH_STEP_INPUTS", '[{"dir": "/x"}]')
    with pytest.raises(StepError, match=r"BERTH_STEP_INPUTS\[0\]"):
        berth.get_inputs()
    monkeypatch.delenv("BERTH_STEP_INPUTS")
    with pytest.raises(StepError, match="BERTH_STEP_INPUTS is not set"):
        berth.get_inputs()


def test_missing_output_dir(run, monkeypatch):
    run.become("a")
    monkeypatch.setenv("BERTH_STEP_OUTPUT_DIR", str(run.root / "nowhere"))
    with pytest.raises(StepError, match="does not exist"):
        berth.output(1)
    monkeypatch.delenv("BERTH_STEP_OUTPUT_DIR")
    with pytest.raises(NotAStepError, match="BERTH_STEP_OUTPUT_DIR is not set"):
        berth.output(1)


# -- outside a step -----------------------------------------------------------------

@pytest.mark.parametrize("call", [
    lambda: berth.get_params(), lambda: berth.get_step_param("x"),
    lambda: berth.get_pipeline_param("x", 1), lambda: berth.output(1, name="x"),
    lambda: berth.output(1), lambda: berth.get_inputs(), lambda: orchest.get_inputs(),
    lambda: orchest.transfer.output_to_disk(1, name="x"), lambda: orchest.get_params(),
])
def test_outside_a_step_every_function_says_so(call, tmp_path, monkeypatch):
    monkeypatch.setenv("BERTH_STEP_OUTPUT_DIR", str(tmp_path))  # not enough on its own
    with pytest.raises(NotAStepError) as e:
        call()
    assert NOT_A_STEP in str(e.value)
    assert isinstance(e.value, PlatformError) and isinstance(e.value, RuntimeError)
    assert os.listdir(tmp_path) == []


# -- the orchest module ---------------------------------------------------------------

def test_orchest_names_and_signatures():
    import orchest.parameters
    import orchest.services
    import orchest.transfer

    for name in ("get_step_param", "get_params", "get_pipeline_param", "output",
                 "get_inputs", "get_service", "get_services", "update_params",
                 "update_step_param", "update_pipeline_param"):
        assert callable(getattr(orchest, name)), name
    assert orchest.get_service is berth.get_service
    assert orchest.services.get_services is berth.get_services
    assert orchest.parameters.get_step_param is berth.get_step_param
    assert orchest.transfer.get_inputs is berth.get_inputs
    for fn in (orchest.transfer.output, orchest.transfer.output_to_disk,
               orchest.transfer.output_to_memory):
        assert fn.__doc__

    def params(fn):
        return list(inspect.signature(fn).parameters)

    assert params(orchest.get_step_param) == ["name", "default"]
    assert params(orchest.get_pipeline_param) == ["name", "default"]
    assert params(orchest.output) == ["data", "name"]
    assert params(orchest.transfer.output_to_disk) == ["data", "name", "serialization"]
    assert params(orchest.transfer.output_to_memory) == ["data", "name", "disk_fallback"]
    assert params(orchest.get_inputs)[:2] == ["ignore_failure", "verbose"]
    assert "silence_multiple_calls_warning" in params(orchest.get_inputs)


def test_orchest_aliases_write_what_berth_reads(run):
    import orchest.transfer

    run.become("a")
    orchest.transfer.output_to_disk({"k": 1}, name="disk")
    orchest.transfer.output_to_memory([1], name="mem", disk_fallback=False)
    orchest.output("plain", name=None)
    with pytest.raises(ValueError, match="serialization"):
        orchest.transfer.output_to_disk(b"x", "raw", serialization="PICKLE")
    assert orchest.get_step_param("rate") == 0.5
    assert orchest.get_params()[1]["batch"] == 64
    run.become("d")
    assert orchest.get_inputs(verbose=True) == {"unnamed": ["plain"], "disk": {"k": 1},
                                                "mem": [1]}


def test_orchest_get_service_asks_the_platform(fake_platform):
    fake_platform.answer("GET /api/v1/services/redis/endpoint",
                         (200, {"internal_hostname": "127.0.3.7", "ports": [6379]}))
    assert orchest.get_service("redis")["internal_hostname"] == "127.0.3.7"
    with pytest.raises(orchest.error.ServiceNotFound):
        orchest.get_service("postgres")


def test_berth_exposes_the_step_functions():
    for name in ("get_step_param", "get_params", "get_pipeline_param", "output",
                 "get_inputs"):
        assert getattr(berth, name) is getattr(steps, name)
        assert getattr(berth, name).__doc__


# -- as real processes ----------------------------------------------------------------

PARENT = """
import orchest
orchest.output({"n": orchest.get_step_param("rate")}, name="cfg")
orchest.output(complex(1, 2))
"""

CHILD = """
import json, orchest
inputs = orchest.get_inputs()
print(json.dumps({"cfg": inputs["cfg"], "unnamed": [repr(v) for v in inputs["unnamed"]],
                  "batch": orchest.get_pipeline_param("batch")}))
"""


def test_script_steps_pass_data_between_processes(run, monkeypatch):
    def step(uuid, source):
        run.become(uuid)
        script = run.root / f"{uuid}.py"
        script.write_text(source)
        env = dict(os.environ, PYTHONPATH=str(SDK_DIR))
        done = subprocess.run([sys.executable, str(script)], env=env, cwd=run.root,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    step("a", PARENT)
    assert pickle.loads((run.out_dir("a") / "_unnamed.pickle").read_bytes()) == 1 + 2j
    got = json.loads(step("d", CHILD))
    assert got == {"cfg": {"n": 0.5}, "unnamed": ["(1+2j)"], "batch": 64}
