"""Entrypoints: Python functions exposed as HTTP endpoints with checked arguments.

An Entrypoint reads its function's signature and type hints once. A request
then becomes keyword arguments through `args_from_json` (the JSON object body of
POST, PUT, PATCH) or `args_from_query` (the query string of GET and DELETE);
both raise ArgumentError naming the argument, which the server answers with 422.
"""

import inspect
import re
import typing
from typing import Any, Callable

from .typespec import (AnySpec, ArgumentError, Field, ListSpec, OptionalSpec, Spec,
                       UnsupportedHint, describe, object_from_json, parse_hint)

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
QUERY_METHODS = ("GET", "DELETE")
RESERVED = ("/", "/docs", "/openapi.json")
_PATH = re.compile(r"(/[A-Za-z0-9._\-]+)+")


class Entrypoint:
    """One exposed function, with its method, path and argument specs."""

    def __init__(self, func: Callable, method: str = "POST", path: str | None = None):
        if not callable(func):
            raise TypeError(f"@entrypoint decorates a function, got {func!r}")
        self.func = func
        self.name = getattr(func, "__name__", "entrypoint")
        self.method = _method(self.name, method)
        self.path = _path(self.name, self.name if path is None else path)
        self.doc = inspect.getdoc(func) or ""
        self.arguments, self.returns = _read_signature(self.name, func)

    @property
    def takes_query(self) -> bool:
        return self.method in QUERY_METHODS

    def args_from_json(self, body: Any) -> dict:
        if not isinstance(body, dict):
            detail = (f"must be a JSON object of named arguments like {self._example()}, "
                      f"got {describe(body)}")
            raise ArgumentError("", detail, message="request body " + detail)
        return object_from_json(self.arguments, body, None, f"entrypoint '{self.name}'")

    def args_from_query(self, query: dict[str, list[str]]) -> dict:
        by_name = {a.name: a for a in self.arguments}
        for key in query:
            if key not in by_name:
                known = ", ".join(by_name) or "none"
                raise ArgumentError(key, f"unknown argument for entrypoint '{self.name}'; "
                                         f"accepted: {known}")
        kwargs = {}
        for arg in self.arguments:
            values = query.get(arg.name)
            if values is None:
                if arg.required:
                    raise ArgumentError(arg.name, f"missing required argument ({arg.spec.name}); "
                                                  f"pass it in the query string: ?{arg.name}=...")
                continue
            spec = arg.spec.inner if isinstance(arg.spec, OptionalSpec) else arg.spec
            if isinstance(spec, ListSpec):  # ?tag=a&tag=b
                item = spec.item
                kwargs[arg.name] = [item.from_text(v, f"{arg.name}[{i}]")
                                    for i, v in enumerate(values)]
            elif len(values) > 1:
                raise ArgumentError(arg.name, f"given {len(values)} times in the query string; "
                                              "give it once")
            else:
                kwargs[arg.name] = arg.spec.from_text(values[0], arg.name)
        return kwargs

    def call(self, kwargs: dict) -> Any:
        return self.func(**kwargs)

    def _example(self) -> str:
        names = [a.name for a in self.arguments][:2]
        return "{" + ", ".join(f'"{n}": ...' for n in names) + "}"


def _method(name: str, method: str) -> str:
    m = str(method).upper()
    if m not in METHODS:
        raise ValueError(f"entrypoint '{name}': method {method!r} is not supported; "
                         f"use one of {', '.join(METHODS)}")
    return m


def _path(name: str, path: str) -> str:
    p = "/" + str(path).strip().strip("/")
    if p in RESERVED or p.startswith("/~"):
        raise ValueError(f"entrypoint '{name}': path {p!r} is reserved by berth "
                         "(/, /docs, /openapi.json and /~...); choose another with "
                         "@service.entrypoint(path=...)")
    if not _PATH.fullmatch(p):
        raise ValueError(f"entrypoint '{name}': path {path!r} is not valid; use segments of "
                         "letters, digits, '.', '_' and '-', like 'predict' or 'v1/predict'")
    return p


def _read_signature(name: str, func: Callable) -> tuple[list[Field], Spec | None]:
    """The argument fields and the return spec (None if the return hint is unreadable)."""
    try:
        hints = typing.get_type_hints(func)
    except Exception as e:
        raise TypeError(f"entrypoint '{name}': cannot read its type hints: {e}") from None
    fields = []
    for p in inspect.signature(func).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY):
            raise TypeError(f"entrypoint '{name}': argument '{p.name}' is "
                            f"{p.kind.description}; entrypoint arguments are passed by name, "
                            "so declare each one as a plain named argument")
        try:
            spec = parse_hint(hints.get(p.name, p.annotation))
        except UnsupportedHint as e:
            raise TypeError(f"entrypoint '{name}', argument '{p.name}': {e}") from None
        has_default = p.default is not p.empty
        fields.append(Field(p.name, spec, required=not has_default,
                            default=p.default if has_default else None, has_default=has_default))
    returns: Spec | None
    if "return" not in hints:
        returns = AnySpec()
    else:
        try:
            returns = parse_hint(hints["return"])
        except UnsupportedHint:
            returns = None  # documented as "any"; the value is still serialized at run time
    return fields, returns
