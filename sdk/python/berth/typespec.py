"""Type hints turned into specs that check JSON values and describe themselves.

An entrypoint's hints are read once, when it is decorated, so that a hint berth
cannot handle fails at start-up with a message instead of at the first request.
Each spec can

  * check and convert a decoded JSON value (`from_json`), raising ArgumentError
    with the path of the offending value (`point.x`, `tags[2]`);
  * convert one query-string value (`from_text`), for GET entrypoints;
  * describe itself as a JSON Schema (`schema`), for the OpenAPI document.

Supported: int (not bool), float (int accepted), str, bool, list / list[T],
dict / dict[str, T], Optional[T] / T | None, other unions, Literal[...],
dataclasses (from a JSON object, recursively), Any or no hint.
"""

import dataclasses
import inspect
import json
import re
import types
import typing
from typing import Any


class ArgumentError(ValueError):
    """A request value does not fit its type; `str()` names the argument."""

    def __init__(self, path: str, detail: str, message: str | None = None):
        super().__init__(message or f"argument '{path}': {detail}")
        self.path = path
        self.detail = detail


class UnsupportedHint(TypeError):
    """A type hint that berth cannot read from JSON."""


SUPPORTED = ("int, float, str, bool, list[T], dict[str, T], Optional[T] (T | None), "
             "Literal[...], a dataclass, or Any")


def json_kind(value: Any) -> str:
    """The JSON name of a decoded value's type, as used in error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def describe(value: Any) -> str:
    """`integer 3`, `string "x"`, `null`: what a client sent, short enough for a message."""
    if value is None:
        return "null"
    text = json.dumps(value, ensure_ascii=False, default=repr)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{json_kind(value)} {text}"


class Spec:
    """Base of all specs. `name` is how messages and docs call the type."""

    name = "any value"

    def from_json(self, value: Any, path: str) -> Any:
        return value

    def from_text(self, text: str, path: str) -> Any:
        """Converts a query-string value; by default the text is parsed as JSON."""
        try:
            value = json.loads(text)
        except ValueError:
            raise ArgumentError(path, f"expected {self.name} written as JSON, got {text!r}") \
                from None
        return self.from_json(value, path)

    def schema(self, components: "Components") -> dict:
        return {}

    def mismatch(self, value: Any, path: str) -> ArgumentError:
        return ArgumentError(path, f"expected {self.name}, got {describe(value)}")


class AnySpec(Spec):
    def from_text(self, text: str, path: str) -> Any:
        return text


class NullSpec(Spec):
    name = "null"

    def from_json(self, value, path):
        if value is not None:
            raise self.mismatch(value, path)
        return None

    def schema(self, components):
        return {"type": "null"}


class BoolSpec(Spec):
    name = "boolean"
    _TEXT = {"true": True, "1": True, "yes": True, "on": True,
             "false": False, "0": False, "no": False, "off": False}

    def from_json(self, value, path):
        if not isinstance(value, bool):
            raise self.mismatch(value, path)
        return value

    def from_text(self, text, path):
        try:
            return self._TEXT[text.strip().lower()]
        except KeyError:
            raise ArgumentError(path, f"expected boolean (true or false), got {text!r}") from None

    def schema(self, components):
        return {"type": "boolean"}


class IntSpec(Spec):
    name = "integer"
    _TEXT = re.compile(r"[+-]?\d+")

    def from_json(self, value, path):
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.mismatch(value, path)
        return value

    def from_text(self, text, path):
        if not self._TEXT.fullmatch(text.strip()):
            raise ArgumentError(path, f"expected integer, got {text!r}")
        return int(text)

    def schema(self, components):
        return {"type": "integer"}


class FloatSpec(Spec):
    name = "number"
    _TEXT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")

    def from_json(self, value, path):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.mismatch(value, path)
        return float(value)

    def from_text(self, text, path):
        if not self._TEXT.fullmatch(text.strip()):
            raise ArgumentError(path, f"expected number, got {text!r}")
        return float(text)

    def schema(self, components):
        return {"type": "number"}


class StrSpec(Spec):
    name = "string"

    def from_json(self, value, path):
        if not isinstance(value, str):
            raise self.mismatch(value, path)
        return value

    def from_text(self, text, path):
        return text

    def schema(self, components):
        return {"type": "string"}


class ListSpec(Spec):
    name = "array"

    def __init__(self, item: Spec):
        self.item = item

    def from_json(self, value, path):
        if not isinstance(value, list):
            raise self.mismatch(value, path)
        return [self.item.from_json(v, f"{path}[{i}]") for i, v in enumerate(value)]

    def schema(self, components):
        s = {"type": "array"}
        item = self.item.schema(components)
        if item:
            s["items"] = item
        return s


class DictSpec(Spec):
    name = "object"

    def __init__(self, value: Spec):
        self.value = value

    def from_json(self, value, path):
        if not isinstance(value, dict):
            raise self.mismatch(value, path)
        return {k: self.value.from_json(v, f"{path}.{k}") for k, v in value.items()}

    def schema(self, components):
        s = {"type": "object"}
        values = self.value.schema(components)
        if values:
            s["additionalProperties"] = values
        return s


class OptionalSpec(Spec):
    """T | None: null, or a value of T."""

    def __init__(self, inner: Spec):
        self.inner = inner
        self.name = f"{inner.name} or null"

    def from_json(self, value, path):
        if value is None:
            return None
        try:
            return self.inner.from_json(value, path)
        except ArgumentError as e:
            if e.path != path:  # the error is deeper inside; its message is the useful one
                raise
            raise self.mismatch(value, path) from None

    def from_text(self, text, path):
        # In a query string, the word null stands for None.
        return None if text == "null" else self.inner.from_text(text, path)

    def schema(self, components):
        inner = self.inner.schema(components)
        if not inner:
            return {}
        if isinstance(inner.get("type"), str):
            return {**inner, "type": [inner["type"], "null"]}
        return {"anyOf": [inner, {"type": "null"}]}


class UnionSpec(Spec):
    """A | B: the first member that accepts the value wins."""

    def __init__(self, members: list[Spec]):
        self.members = members
        self.name = " or ".join(m.name for m in members)

    def from_json(self, value, path):
        for member in self.members:
            try:
                return member.from_json(value, path)
            except ArgumentError:
                continue
        raise self.mismatch(value, path)

    def from_text(self, text, path):
        for member in self.members:
            try:
                return member.from_text(text, path)
            except ArgumentError:
                continue
        raise ArgumentError(path, f"expected {self.name}, got {text!r}")

    def schema(self, components):
        return {"anyOf": [m.schema(components) for m in self.members]}


class LiteralSpec(Spec):
    """Literal["small", "large"]: one of fixed JSON values."""

    def __init__(self, values: tuple):
        self.values = values
        self.name = "one of " + ", ".join(json.dumps(v) for v in values)

    def from_json(self, value, path):
        for v in self.values:  # compare types too: 1 is not True, 1 is not 1.0 here
            if type(v) is type(value) and v == value:
                return value
        raise self.mismatch(value, path)

    def from_text(self, text, path):
        for v in self.values:
            if (isinstance(v, str) and v == text) or \
                    (not isinstance(v, str) and json.dumps(v) == text.strip()):
                return v
        raise ArgumentError(path, f"expected {self.name}, got {text!r}")

    def schema(self, components):
        return {"enum": list(self.values)}


@dataclasses.dataclass
class Field:
    """One field of a dataclass, or one argument of an entrypoint."""

    name: str
    spec: Spec
    required: bool
    default: Any = None  # meaningful only when not required and has_default
    has_default: bool = False


def fields_schema(fields: list[Field], components: "Components", title: str | None = None) -> dict:
    """The JSON Schema of an object with exactly these fields."""
    props = {}
    for f in fields:
        s = dict(f.spec.schema(components))
        if f.has_default and _jsonable(f.default):
            s["default"] = f.default
        props[f.name] = s
    schema = {"type": "object"}
    if title:
        schema["title"] = title
    schema["properties"] = props
    required = [f.name for f in fields if f.required]
    if required:
        schema["required"] = required
    schema["additionalProperties"] = False
    return schema


def object_from_json(fields: list[Field], value: Any, path: str | None, what: str) -> dict:
    """Checks a JSON object against `fields` and returns the converted values by name.

    `path` is None at the top level (the request body), where each field is itself
    an argument; `what` names the object in messages ("Point", "entrypoint 'hello'").
    """
    by_name = {f.name: f for f in fields}
    unknown = [k for k in value if k not in by_name]
    if unknown:
        known = ", ".join(by_name) or "none"
        kind = "argument" if path is None else "field"
        raise ArgumentError(_join(path, unknown[0]),
                            f"unknown {kind} for {what}; accepted: {known}")
    out = {}
    for f in fields:
        if f.name in value:
            out[f.name] = f.spec.from_json(value[f.name], _join(path, f.name))
        elif f.required:
            kind = "argument" if path is None else "field"
            raise ArgumentError(_join(path, f.name), f"missing required {kind} ({f.spec.name})")
    return out


class DataclassSpec(Spec):
    """A dataclass, built from a JSON object whose keys are exactly its init fields."""

    def __init__(self, cls: type):
        self.cls = cls
        self.name = f"object ({cls.__name__})"
        self.fields: list[Field] = []  # filled by parse_hint, after caching (recursion)

    def from_json(self, value, path):
        if not isinstance(value, dict):
            raise self.mismatch(value, path)
        kwargs = object_from_json(self.fields, value, path, self.cls.__name__)
        try:
            return self.cls(**kwargs)
        except (TypeError, ValueError) as e:  # __post_init__ validation, for example
            raise ArgumentError(path, f"invalid {self.cls.__name__}: {e}") from None

    def schema(self, components):
        return components.ref(
            self.cls, lambda: fields_schema(self.fields, components, title=self.cls.__name__))


class Components:
    """The named schemas (`#/components/schemas/...`) that dataclass specs refer to."""

    def __init__(self):
        self.schemas: dict[str, dict] = {}
        self._names: dict[type, str] = {}

    def ref(self, cls: type, build) -> dict:
        name = self._names.get(cls)
        if name is None:
            name = cls.__name__
            if name in self.schemas:  # two dataclasses share a name: qualify the second
                name = f"{cls.__module__}.{cls.__qualname__}".replace("<", "").replace(">", "")
            self._names[cls] = name
            self.schemas[name] = {}  # reserved first: a dataclass may contain itself
            self.schemas[name] = build()
        return {"$ref": f"#/components/schemas/{name}"}


def _join(path: str | None, name: str) -> str:
    return name if path is None else f"{path}.{name}"


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
        return True
    except (TypeError, ValueError):
        return False


_SCALARS = {bool: BoolSpec, int: IntSpec, float: FloatSpec, str: StrSpec}


def parse_hint(hint: Any, _seen: dict | None = None) -> Spec:
    """Reads one type hint into a Spec; raises UnsupportedHint naming what is accepted."""
    seen = {} if _seen is None else _seen
    if hint is Any or hint is typing.Any or hint is inspect.Parameter.empty:
        return AnySpec()
    if hint is None or hint is type(None):
        return NullSpec()
    if isinstance(hint, type) and hint in _SCALARS:
        return _SCALARS[hint]()
    if hint is list:
        return ListSpec(AnySpec())
    if hint is dict:
        return DictSpec(AnySpec())
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is list:
        return ListSpec(parse_hint(args[0], seen) if args else AnySpec())
    if origin is dict:
        if args and args[0] not in (str, Any):
            raise UnsupportedHint(
                f"type hint {_show(hint)} is not supported: JSON object keys are strings, "
                "so use dict[str, T]")
        return DictSpec(parse_hint(args[1], seen) if args else AnySpec())
    if origin is typing.Union or origin is types.UnionType:
        members = [a for a in args if a is not type(None)]
        inner = parse_hint(members[0], seen) if len(members) == 1 else \
            UnionSpec([parse_hint(m, seen) for m in members])
        return OptionalSpec(inner) if len(members) < len(args) else inner
    if origin is typing.Literal:
        if not all(isinstance(a, (str, int, float, bool)) or a is None for a in args):
            raise UnsupportedHint(f"type hint {_show(hint)} is not supported: Literal values "
                                  "must be strings, numbers, booleans or None")
        return LiteralSpec(args)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if hint in seen:
            return seen[hint]
        spec = seen[hint] = DataclassSpec(hint)
        try:
            hints = typing.get_type_hints(hint)
        except Exception as e:
            raise UnsupportedHint(f"cannot read the type hints of dataclass "
                                  f"{hint.__name__}: {e}") from None
        for f in dataclasses.fields(hint):
            if not f.init:
                continue
            try:
                field_spec = parse_hint(hints.get(f.name, Any), seen)
            except UnsupportedHint as e:
                raise UnsupportedHint(f"field {hint.__name__}.{f.name}: {e}") from None
            has_default = f.default is not dataclasses.MISSING
            optional = has_default or f.default_factory is not dataclasses.MISSING
            spec.fields.append(Field(f.name, field_spec, required=not optional,
                                     default=f.default if has_default else None,
                                     has_default=has_default))
        return spec
    raise UnsupportedHint(f"type hint {_show(hint)} is not supported; use {SUPPORTED}")


def _show(hint: Any) -> str:
    return hint.__name__ if isinstance(hint, type) else repr(hint).replace("typing.", "")


