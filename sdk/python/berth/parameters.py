"""Runtime parameters: typed values that can be changed while the service runs.

A parameter's type is the type of its default (bool, int, float, str, list or
dict) and never changes, so code reading it can rely on it. Values are copied in
and out, so a caller mutating a list it got cannot change the stored value behind
the lock's back. All methods are safe to call from any thread.
"""

import copy
import json
import logging
import re
import threading
from dataclasses import dataclass
from typing import Any

from .typespec import describe

log = logging.getLogger("berth.parameters")

# Checked in this order: bool before int, because True is an int too.
_TYPES = [(bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"),
          (list, "array"), (dict, "object")]
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")


class UnknownParameter(KeyError):
    """get/set of a parameter that add_parameter never defined."""

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0])


def type_name_of(default: Any) -> str:
    for py_type, name in _TYPES:
        if isinstance(default, py_type):
            return name
    raise TypeError(f"a parameter's default must be a bool, int, float, str, list or dict, "
                    f"got {type(default).__name__} {default!r}; its type becomes the "
                    "parameter's type")


def coerce(name: str, type_name: str, value: Any) -> Any:
    """Returns `value` as a value of the parameter's type, or raises TypeError."""
    ok = {
        "boolean": isinstance(value, bool),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, (int, float)) and not isinstance(value, bool),
        "string": isinstance(value, str),
        "array": isinstance(value, list),
        "object": isinstance(value, dict),
    }[type_name]
    if not ok:
        raise TypeError(f"parameter '{name}' is of type {type_name}; got {describe(value)}")
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise TypeError(f"parameter '{name}': the value must be JSON-serializable ({e})") \
            from None
    return float(value) if type_name == "number" else copy.deepcopy(value)


@dataclass
class Parameter:
    name: str
    type_name: str
    default: Any
    value: Any


class Parameters:
    """The parameters of one service, by name."""

    def __init__(self, overrides: dict | None = None):
        """`overrides` are the values stored on the platform (BERTH_PARAMETERS)."""
        self._lock = threading.Lock()
        self._params: dict[str, Parameter] = {}
        self._overrides = dict(overrides or {})

    def add(self, name: str, default: Any) -> None:
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ValueError(f"parameter name {name!r} is not valid; use letters, digits, "
                             "'_', '.' and '-', starting with a letter or '_'")
        type_name = type_name_of(default)
        default = coerce(name, type_name, default)
        value = default
        if name in self._overrides:
            try:
                value = coerce(name, type_name, self._overrides[name])
            except TypeError as e:
                log.warning("ignoring the stored value of parameter '%s' from BERTH_PARAMETERS: "
                            "%s; using the default %r", name, e, default)
        with self._lock:
            if name in self._params:
                raise ValueError(f"parameter '{name}' is already defined; call add_parameter "
                                 "once per name and set_parameter to change its value")
            self._params[name] = Parameter(name, type_name, default, value)

    def get(self, name: str) -> Any:
        with self._lock:
            return copy.deepcopy(self._find(name).value)

    def set(self, name: str, value: Any) -> Any:
        """Sets and returns the new value; TypeError if it does not fit."""
        with self._lock:
            param = self._find(name)
            new = coerce(name, param.type_name, value)
            old, param.value = param.value, new
        if old != new:
            log.info("parameter '%s' changed from %s to %s", name, _short(old), _short(new))
        return copy.deepcopy(new)

    def describe(self, name: str) -> dict:
        with self._lock:
            p = self._find(name)
            return {"name": p.name, "value": copy.deepcopy(p.value), "type": p.type_name}

    def describe_all(self) -> dict:
        with self._lock:
            return {p.name: {"value": copy.deepcopy(p.value), "type": p.type_name,
                             "default": copy.deepcopy(p.default)}
                    for p in self._params.values()}

    def types(self) -> dict[str, str]:
        with self._lock:
            return {p.name: p.type_name for p in self._params.values()}

    def unused_overrides(self) -> list[str]:
        """Names in BERTH_PARAMETERS that no add_parameter call defined."""
        with self._lock:
            return sorted(n for n in self._overrides if n not in self._params)

    def _find(self, name: str) -> Parameter:
        try:
            return self._params[name]
        except KeyError:
            known = ", ".join(sorted(self._params)) or "none"
            raise UnknownParameter(f"unknown parameter '{name}'; defined parameters: {known}. "
                                   "Define it first with add_parameter(name, default)") from None


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 80 else text[:77] + "..."


def parse_overrides(text: str | None) -> dict:
    """Reads BERTH_PARAMETERS; a malformed value is logged and ignored, not fatal."""
    if not text or not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError as e:
        log.warning("ignoring BERTH_PARAMETERS: it is not valid JSON (%s); expected an object "
                    "like {\"name\": value}", e)
        return {}
    if not isinstance(value, dict):
        log.warning("ignoring BERTH_PARAMETERS: expected a JSON object like {\"name\": value}, "
                    "got %s", type(value).__name__)
        return {}
    return value
