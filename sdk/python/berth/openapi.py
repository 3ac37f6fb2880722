"""The OpenAPI 3.1 document of a service, derived from its entrypoints and parameters.

It is what /docs renders and what client generators read, so it describes only
what the server really checks: request schemas come from the same specs that
validate requests.
"""

from .entrypoints import Entrypoint
from .typespec import Components, Field, fields_schema

_ERROR = {"$ref": "#/components/schemas/Error"}


def _json(schema: dict) -> dict:
    return {"application/json": {"schema": schema}}


def _error_response(description: str) -> dict:
    return {"description": description, "content": _json(_ERROR)}


def build(title: str, version: str, context_root: str, entrypoints: list[Entrypoint],
          parameter_types: dict[str, str]) -> dict:
    components = Components()
    paths: dict[str, dict] = {}
    for ep in entrypoints:
        paths.setdefault(ep.path, {})[ep.method.lower()] = _operation(ep, components)
    paths.update(_parameter_paths(parameter_types))
    paths["/~health"] = {"get": {
        "operationId": "berth_health", "summary": "Liveness check", "tags": ["berth"],
        "responses": {"200": {"description": "The service is up", "content": _json(
            {"type": "object", "properties": {"status": {"const": "ok"}}})}}}}
    schemas = dict(components.schemas)
    schemas["Error"] = {
        "type": "object", "required": ["error"],
        "properties": {"error": {"type": "object", "required": ["code", "message"],
                                 "properties": {"code": {"type": "string"},
                                                "message": {"type": "string"}}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "servers": [{"url": context_root or "/"}],
        "paths": paths,
        "components": {"schemas": schemas},
    }


def _operation(ep: Entrypoint, components: Components) -> dict:
    summary, _, rest = ep.doc.partition("\n")
    op = {"operationId": ep.name, "summary": summary.strip() or ep.name, "tags": ["entrypoints"]}
    if rest.strip():
        op["description"] = rest.strip()
    if ep.takes_query:
        op["parameters"] = [_query_parameter(a, components) for a in ep.arguments]
    else:
        op["requestBody"] = {"required": any(a.required for a in ep.arguments),
                             "content": _json(fields_schema(ep.arguments, components))}
    result = {} if ep.returns is None else ep.returns.schema(components)
    op["responses"] = {
        "200": {"description": "The function's return value", "content": _json(result)},
        "400": _error_response("The body is not valid JSON"),
        "422": _error_response("An argument is missing, unknown or of the wrong type"),
        "500": _error_response("The function raised an exception"),
    }
    return op


def _query_parameter(arg: Field, components: Components) -> dict:
    schema = dict(arg.spec.schema(components))
    if arg.has_default:
        schema["default"] = arg.default
    p = {"name": arg.name, "in": "query", "required": arg.required, "schema": schema}
    if schema.get("type") == "array":
        p["style"], p["explode"] = "form", True  # ?tag=a&tag=b
    return p


def _parameter_paths(types: dict[str, str]) -> dict:
    listing = {"type": "object", "properties": {"parameters": {
        "type": "object",
        "properties": {name: {"type": "object", "properties": {
            "value": {"type": t}, "type": {"const": t}, "default": {"type": t}}}
            for name, t in types.items()}}}}
    paths = {"/~parameters": {"get": {
        "operationId": "berth_list_parameters", "summary": "List the runtime parameters",
        "tags": ["parameters"],
        "responses": {"200": {"description": "Every parameter's value, type and default",
                              "content": _json(listing)}}}}}
    for name, t in types.items():
        value = {"type": t}
        paths[f"/~parameters/{name}"] = {
            "get": {
                "operationId": f"berth_get_parameter_{name}", "tags": ["parameters"],
                "summary": f"Read parameter {name} ({t})",
                "responses": {
                    "200": {"description": "The current value", "content": _json({
                        "type": "object", "properties": {
                            "name": {"const": name}, "value": value, "type": {"const": t}}})},
                    "404": _error_response("No such parameter")}},
            "post": {
                "operationId": f"berth_set_parameter_{name}", "tags": ["parameters"],
                "summary": f"Change parameter {name} ({t})",
                "requestBody": {"required": True, "content": _json({"anyOf": [
                    {"type": "object", "required": ["value"], "properties": {"value": value},
                     "additionalProperties": False},
                    {"type": "object", "required": [name], "properties": {name: value},
                     "additionalProperties": False}]})},
                "responses": {
                    "200": {"description": "The new value", "content": _json({
                        "type": "object", "properties": {"name": {"const": name},
                                                         "value": value}})},
                    "404": _error_response("No such parameter"),
                    "422": _error_response("The value is not of the parameter's type")}},
        }
    return paths
