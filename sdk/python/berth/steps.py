"""What a pipeline step's code uses: its parameters, its outputs, its inputs.

    import berth

    rate = berth.get_step_param("rate", 0.1)
    data = berth.get_inputs()           # {"name": value, ..., "unnamed": [value, ...]}
    berth.output(cleaned, name="clean")  # the next steps get it by that name

These are Orchest's SDK calls (the `orchest` package beside this one maps them), so
step code written for Orchest runs unchanged. The berth daemon starts each step as a
process with an environment that says everything these functions need:

    ORCHEST_PIPELINE_PATH   the run's frozen pipeline definition (Orchest's
                            pipeline.json form); parameters come from this file
                            only, so a step sees what the run was started with
    ORCHEST_STEP_UUID       this step's uuid (BERTH_STEP carries the same)
    BERTH_RUN               the run's uuid
    ORCHEST_PIPELINE_UUID, ORCHEST_PROJECT_UUID, ORCHEST_SESSION_UUID,
    ORCHEST_SESSION_TYPE    ("interactive" or "noninteractive")
    BERTH_STEP_OUTPUT_DIR   the directory this step's outputs are written to
    BERTH_STEP_INPUTS       a JSON list, one entry per incoming connection in
                            incoming_connections order: {"step": uuid, "dir": path
                            or null}, where dir holds that parent's outputs; or
                            "@PATH" of a file holding that list (a step with very many
                            parents: one environment string is limited to 128 KiB)

An output is one file in the output directory: `<name>.json` when the data survives
JSON unchanged (dict with str keys, list, str, int, float, bool, None, nested), else
`<name>.pickle`; an output without a name is stored as `_unnamed`. Files are written
to a temporary name and renamed, so a reader never sees half an output. The values
are read when a function is called, never at import, so a notebook kernel or a test
may set them after importing berth.
"""

import copy
import json
import os
import pickle
import secrets
import sys
from dataclasses import dataclass
from typing import IO, Any, Callable

from .platform import PlatformError

UNNAMED = "_unnamed"  # the file name of an output without a name
UNNAMED_KEY = "unnamed"  # where get_inputs() puts the unnamed outputs (Orchest's key)
_FORMATS = (".json", ".pickle")


class StepError(PlatformError):
    """A pipeline step cannot do what was asked: its environment, its pipeline
    definition or a parent's output is missing or malformed."""


class NotAStepError(StepError):
    """A step function was called outside a pipeline step (ORCHEST_PIPELINE_PATH unset)."""


class InputNameCollisionError(StepError):
    """Two or more parent steps output data under the same name, so get_inputs()
    cannot tell which one the step means."""


@dataclass(frozen=True)
class StepEnv:
    """A snapshot of what the daemon tells a step about itself."""

    pipeline_path: str
    step_uuid: str
    run_uuid: str
    pipeline_uuid: str
    project_uuid: str
    session_uuid: str
    session_type: str  # "interactive" or "noninteractive"
    output_dir: str
    inputs: str  # BERTH_STEP_INPUTS as set (JSON text), "" when unset

    @staticmethod
    def read() -> "StepEnv":
        """The current environment; NotAStepError when not running as a step."""
        env = os.environ
        path = env.get("ORCHEST_PIPELINE_PATH", "")
        if not path:
            raise NotAStepError(
                "not running as a pipeline step (ORCHEST_PIPELINE_PATH is not set). The berth "
                "daemon sets it, with ORCHEST_STEP_UUID, BERTH_STEP_OUTPUT_DIR and "
                "BERTH_STEP_INPUTS, for every step process it starts")
        return StepEnv(
            pipeline_path=path,
            step_uuid=env.get("ORCHEST_STEP_UUID", "") or env.get("BERTH_STEP", ""),
            run_uuid=env.get("BERTH_RUN", ""),
            pipeline_uuid=env.get("ORCHEST_PIPELINE_UUID", ""),
            project_uuid=env.get("ORCHEST_PROJECT_UUID", ""),
            session_uuid=env.get("ORCHEST_SESSION_UUID", ""),
            session_type=env.get("ORCHEST_SESSION_TYPE", ""),
            output_dir=env.get("BERTH_STEP_OUTPUT_DIR", ""),
            inputs=env.get("BERTH_STEP_INPUTS", ""),
        )


# -- the pipeline definition and parameters -----------------------------------------

def _pipeline(env: StepEnv) -> dict:
    """The frozen pipeline definition, read afresh (it is small and never changes)."""
    try:
        with open(env.pipeline_path, encoding="utf-8") as f:
            pipeline = json.load(f)
    except OSError as e:
        raise StepError(f"cannot read the pipeline definition ORCHEST_PIPELINE_PATH="
                        f"{env.pipeline_path}: {e.strerror or e}") from None
    except ValueError as e:
        raise StepError(f"the pipeline definition {env.pipeline_path} is not valid JSON: "
                        f"{e}") from None
    if not isinstance(pipeline, dict):
        raise StepError(f"the pipeline definition {env.pipeline_path} must be a JSON object, "
                        f"got {type(pipeline).__name__}")
    return pipeline


def _steps_of(pipeline: dict, env: StepEnv) -> dict:
    steps = pipeline.get("steps", {})
    if not isinstance(steps, dict):
        raise StepError(f"the pipeline definition {env.pipeline_path} has \"steps\" of type "
                        f"{type(steps).__name__}; expected an object keyed by step uuid")
    return steps


def _current_step(pipeline: dict, env: StepEnv) -> dict:
    if not env.step_uuid:
        raise StepError("cannot tell which step this is: ORCHEST_STEP_UUID (and BERTH_STEP) "
                        "are not set")
    step = _steps_of(pipeline, env).get(env.step_uuid)
    if not isinstance(step, dict):
        raise StepError(f"step {env.step_uuid} (ORCHEST_STEP_UUID) is not in the pipeline "
                        f"definition {env.pipeline_path}")
    return step


def _params_of(holder: dict, what: str, env: StepEnv) -> dict:
    params = holder.get("parameters")
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise StepError(f"the parameters of {what} in {env.pipeline_path} must be a JSON "
                        f"object, got {type(params).__name__}")
    return copy.deepcopy(params)


def get_params() -> tuple[dict, dict]:
    """(step parameters, pipeline parameters) of this step's run, as two dicts.

    Read from the run's frozen pipeline definition (ORCHEST_PIPELINE_PATH), so they
    are the values the run was started with. The dicts are copies: changing them
    changes nothing else.
    """
    env = StepEnv.read()
    pipeline = _pipeline(env)
    step = _current_step(pipeline, env)
    return (_params_of(step, f"step {env.step_uuid}", env),
            _params_of(pipeline, "the pipeline", env))


def get_step_param(name: str, default: Any = None) -> Any:
    """The value of this step's parameter `name`, or `default` when it has none."""
    step_params, _ = get_params()
    return step_params.get(name, default)


def get_pipeline_param(name: str, default: Any = None) -> Any:
    """The value of the pipeline's parameter `name`, or `default` when it has none."""
    _, pipeline_params = get_params()
    return pipeline_params.get(name, default)


def update_params(step_params: dict | None = None, pipeline_params: dict | None = None) -> None:
    """Not supported: a run's parameters are frozen when it starts. Always raises StepError."""
    StepEnv.read()
    raise StepError(
        "cannot update parameters from a step: berth freezes a run's parameters when the "
        "run starts, so every step of it sees the same values. Change the pipeline's "
        "parameters through the berth API (or the run's request) and start a new run")


def step_info() -> dict:
    """Who this step is: step, run, pipeline, project and session uuids, session type,
    its title and file_path from the pipeline definition, and its output directory."""
    env = StepEnv.read()
    pipeline = _pipeline(env)
    step = _current_step(pipeline, env)
    return {"step_uuid": env.step_uuid, "title": step.get("title"),
            "file_path": step.get("file_path"), "run_uuid": env.run_uuid,
            "pipeline_uuid": env.pipeline_uuid or pipeline.get("uuid"),
            "pipeline_name": pipeline.get("name"), "project_uuid": env.project_uuid,
            "session_uuid": env.session_uuid, "session_type": env.session_type,
            "output_dir": env.output_dir}


# -- files ----------------------------------------------------------------------------

def write_atomically(path: str, write: Callable[[IO], None], binary: bool = False) -> None:
    """Calls write(f) on a new file beside `path`, then renames it to `path`.

    Readers see the old file or the complete new one, never a part. The file gets
    the usual permissions (0666 less the umask), unlike tempfile's 0600, because
    other steps read it. On any failure the temporary file is removed.
    """
    directory, base = os.path.split(os.path.abspath(path))
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = os.path.join(directory, f".{base}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, flags, 0o666)
            break
        except FileExistsError:
            continue
    else:
        raise FileExistsError(f"cannot create a temporary file beside {path}")
    try:
        with (os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8")) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


# -- outputs --------------------------------------------------------------------------

def _check_name(name: Any) -> str:
    """The file stem for output `name` (None is the unnamed output)."""
    if name is None:
        return UNNAMED
    if not isinstance(name, str) or not name:
        raise ValueError(f"an output name must be a non-empty string (or None for the unnamed "
                         f"output), got {name!r}")
    if "/" in name or "\0" in name:
        raise ValueError(f"output name {name!r} must not contain '/' (or NUL): it becomes a "
                         "file name")
    if name.startswith((".", "_")):
        raise ValueError(f"output name {name!r} must not start with '.' or '_': those names "
                         "are reserved (temporary files, the unnamed output)")
    if name == UNNAMED_KEY:
        raise ValueError(f"output name {name!r} is reserved: get_inputs() returns the unnamed "
                         "outputs under it; use name=None to output unnamed data")
    return name


def _json_exact(value: Any, depth: int = 0) -> bool:
    """True when json.dumps/json.loads gives back an equal value of the same types."""
    if depth > 500:  # deeper than json's own recursion allows; let pickle have it
        return False
    kind = type(value)
    if value is None or kind is bool or kind is int or kind is str:
        return True
    if kind is float:
        return value == value and value not in (float("inf"), float("-inf"))
    if kind is list:
        return all(_json_exact(v, depth + 1) for v in value)
    if kind is dict:
        return all(type(k) is str and _json_exact(v, depth + 1) for k, v in value.items())
    return False


def _output_dir(env: StepEnv) -> str:
    if not env.output_dir:
        raise NotAStepError("not running as a pipeline step (BERTH_STEP_OUTPUT_DIR is not "
                            "set); the berth daemon sets it for every step it starts")
    if not os.path.isdir(env.output_dir):
        raise StepError(f"the step's output directory BERTH_STEP_OUTPUT_DIR={env.output_dir} "
                        "does not exist")
    return env.output_dir


def output(data: Any, name: str | None = None) -> None:
    """Outputs `data` for the next steps, which get it from get_inputs() under `name`
    (or in the "unnamed" list when `name` is None).

    JSON-exact data is stored as `<name>.json`, anything else pickled as
    `<name>.pickle`. Outputting the same name again replaces the earlier value;
    different names are different outputs. ValueError for an invalid name, TypeError
    for data that can be neither JSON nor pickled.
    """
    stem = _check_name(name)
    directory = _output_dir(StepEnv.read())
    as_json = _json_exact(data)
    ext = ".json" if as_json else ".pickle"

    def write(f) -> None:
        if as_json:
            json.dump(data, f, allow_nan=False)  # ASCII: lone surrogates survive too
            return
        try:
            pickle.dump(data, f, protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError) as e:
            shown = "the unnamed output" if name is None else f"output '{name}'"
            raise TypeError(f"cannot write {shown}: {type(data).__name__} data is not JSON "
                            f"and cannot be pickled ({e})") from None

    write_atomically(os.path.join(directory, stem + ext), write, binary=not as_json)
    other = ".pickle" if as_json else ".json"
    try:
        os.unlink(os.path.join(directory, stem + other))
    except FileNotFoundError:
        pass


# -- inputs ---------------------------------------------------------------------------

def _input_entries(env: StepEnv) -> list[tuple[str, str | None]]:
    """(parent uuid, dir or None) per incoming connection, from BERTH_STEP_INPUTS."""
    if not env.inputs.strip():
        raise StepError("cannot get the step's inputs: BERTH_STEP_INPUTS is not set (the "
                        "berth daemon sets it to a JSON list, [] for a step without incoming "
                        "connections)")
    text = env.inputs
    if text.startswith("@"):
        try:
            with open(text[1:], encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise StepError(f"cannot read the step's inputs from {text[1:]}: {e}") from None
    try:
        entries = json.loads(text)
    except ValueError as e:
        raise StepError(f"BERTH_STEP_INPUTS is not valid JSON: {e}") from None
    if not isinstance(entries, list):
        raise StepError("BERTH_STEP_INPUTS must be a JSON list of {\"step\", \"dir\"} objects, "
                        f"got {type(entries).__name__}")
    result = []
    for i, entry in enumerate(entries):
        step = entry.get("step") if isinstance(entry, dict) else None
        directory = entry.get("dir") if isinstance(entry, dict) else None
        if not isinstance(step, str) or not step or not (directory is None
                                                        or isinstance(directory, str)):
            raise StepError(f"BERTH_STEP_INPUTS[{i}] must be {{\"step\": \"<uuid>\", \"dir\": "
                            f"\"<path>\" or null}}, got {entry!r}")
        result.append((step, directory or None))
    return result


def _outputs_in(directory: str | None) -> dict[str, str]:
    """{stem: file path} of the outputs in a parent's directory; {} when there is none."""
    if not directory:
        return {}
    try:
        names = os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return {}
    except OSError as e:
        raise StepError(f"cannot list the outputs in {directory}: {e.strerror or e}") from None
    found: dict[str, str] = {}
    for file_name in sorted(names):
        stem, ext = os.path.splitext(file_name)
        if ext not in _FORMATS or not stem or stem.startswith("."):
            continue
        if (stem.startswith("_") and stem != UNNAMED) or stem == UNNAMED_KEY:
            continue  # not written by output(): it refuses these names
        path = os.path.join(directory, file_name)
        if stem in found:  # both formats: a crash between replace and unlink; newest wins
            try:
                if os.stat(path).st_mtime_ns <= os.stat(found[stem]).st_mtime_ns:
                    continue
            except OSError:
                continue
        found[stem] = path
    return found


def _load(path: str, step: str) -> Any:
    try:
        if path.endswith(".json"):
            with open(path, encoding="utf-8") as f:
                return json.load(f)
        with open(path, "rb") as f:
            return pickle.load(f)
    except FileNotFoundError:
        raise StepError(f"the output {os.path.basename(path)} of step {step} disappeared "
                        "while it was being read") from None
    except Exception as e:  # unpickling can raise anything the pickled classes raise
        raise StepError(f"cannot read the output {path} of step {step}: "
                        f"{type(e).__name__}: {e}") from None


def get_inputs(ignore_failure: bool = False, verbose: bool = False,
               silence_multiple_calls_warning: bool = False) -> dict:
    """The outputs of this step's parents: {name: value} for every named output, and
    "unnamed": the parents' unnamed outputs in the order of the incoming connections.

    A parent without outputs contributes nothing. InputNameCollisionError when two
    parents output the same name (checked before anything is read). With
    `ignore_failure`, an output that cannot be read becomes None instead of raising
    StepError; `verbose` prints which steps the inputs came from.
    `silence_multiple_calls_warning` is accepted for Orchest's sake: berth never
    evicts outputs, so calling get_inputs() more than once is fine.
    """
    env = StepEnv.read()
    entries = _input_entries(env)
    titles = _titles(env)
    seen: set[str] = set()
    per_parent: list[tuple[str, dict[str, str]]] = []
    owners: dict[str, list[str]] = {}
    for step, directory in entries:
        if step in seen:  # the same parent twice is the same outputs, not a collision
            continue
        seen.add(step)
        files = _outputs_in(directory)
        per_parent.append((step, files))
        for stem in files:
            if stem != UNNAMED:
                owners.setdefault(stem, []).append(step)
    collisions = {n: s for n, s in owners.items() if len(s) > 1}
    if collisions:
        lines = "; ".join(f"'{n}' from " + " and ".join(_shown(s, titles) for s in steps)
                          for n, steps in sorted(collisions.items()))
        raise InputNameCollisionError(
            f"the parents of step {_shown(env.step_uuid, titles)} output the same name, so "
            f"get_inputs() cannot tell which is meant: {lines}. Rename one of the outputs")
    inputs: dict[str, Any] = {UNNAMED_KEY: []}
    for step, files in per_parent:
        for stem, path in files.items():
            try:
                value = _load(path, _shown(step, titles))
            except StepError:
                if not ignore_failure:
                    raise
                value = None
            if stem == UNNAMED:
                inputs[UNNAMED_KEY].append(value)
            else:
                inputs[stem] = value
        if verbose:
            what = ", ".join(sorted(files)) if files else "no outputs"
            print(f"get_inputs: from step {_shown(step, titles)}: {what}", file=sys.stderr)
    return inputs


def _titles(env: StepEnv) -> dict[str, str]:
    """{uuid: title} from the pipeline definition, for error messages; {} if unreadable."""
    try:
        steps = _steps_of(_pipeline(env), env)
    except StepError:
        return {}
    return {u: s["title"] for u, s in steps.items()
            if isinstance(s, dict) and isinstance(s.get("title"), str) and s["title"]}


def _shown(step: str, titles: dict[str, str]) -> str:
    title = titles.get(step)
    return f"'{title}' ({step})" if title else step
