"""The OpenAPI 3 description of the registry's REST API, built from its routes.

Served at ``GET /openapi.json``; schemathesis fuzzes the live registry with it.

>>> from ingest.schema_registry_http import Route
>>> doc = openapi([Route("GET", "/subjects", lambda c: [], "List subjects")])
>>> doc["openapi"], list(doc["paths"])
('3.0.3', ['/subjects'])
"""

from __future__ import annotations

from typing import Any

from ingest.schema_registry_http import CONSUMES, PRODUCES, Route
from lake import COMPATIBILITY_LEVELS

__all__ = ["openapi"]

_EXAMPLE_SCHEMA = (
    '{"type":"record","name":"Order","namespace":"shop","fields":['
    '{"name":"id","type":"long"},{"name":"tip","type":["null","double"],"default":null}]}'
)
_ERROR = {
    "type": "object",
    "properties": {"error_code": {"type": "integer"}, "message": {"type": "string"}},
    "required": ["error_code", "message"],
}
_REFERENCE = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "subject": {"type": "string"},
        "version": {"type": "integer", "format": "int32"},
    },
    "required": ["name", "subject", "version"],
}
COMPONENTS: dict[str, Any] = {
    "ErrorMessage": _ERROR,
    "SchemaReference": _REFERENCE,
    "RegisterSchemaRequest": {
        "type": "object",
        "properties": {
            "schema": {"type": "string"},
            "schemaType": {"type": "string", "enum": ["AVRO"]},
            "references": {"type": "array", "items": _REFERENCE},
        },
        "required": ["schema"],
        "example": {"schema": _EXAMPLE_SCHEMA},
    },
    "Schema": {
        "type": "object",
        "properties": {
            "subject": {"type": "string"},
            "version": {"type": "integer"},
            "id": {"type": "integer"},
            "schema": {"type": "string"},
            "references": {"type": "array", "items": _REFERENCE},
        },
        "required": ["subject", "version", "id", "schema"],
    },
    "SchemaString": {
        "type": "object",
        "properties": {
            "schema": {"type": "string"},
            "references": {"type": "array", "items": _REFERENCE},
        },
        "required": ["schema"],
    },
    "SubjectVersion": {
        "type": "object",
        "properties": {"subject": {"type": "string"}, "version": {"type": "integer"}},
    },
    "Compatibility": {
        "type": "object",
        "properties": {
            "is_compatible": {"type": "boolean"},
            "messages": {"type": "array", "items": {"type": "string"}},
        },
    },
    "Config": {
        "type": "object",
        "properties": {
            "compatibility": {"type": "string"},
            "compatibilityLevel": {"type": "string"},
        },
    },
    "ConfigUpdateRequest": {
        "type": "object",
        "properties": {"compatibility": {"type": "string", "enum": list(COMPATIBILITY_LEVELS)}},
    },
}
_TYPES = {bool: "boolean", int: "integer", str: "string"}
_PATH_EXAMPLES = {"subject": "orders-value", "version": "latest", "id": "1"}


def _operation(route: Route) -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {
            "name": s[1:-1],
            "in": "path",
            "required": True,
            "schema": {"type": "string"},
            "example": _PATH_EXAMPLES[s[1:-1]],
        }
        for s in route.segments
        if s.startswith("{")
    ]
    params += [
        {
            "name": p.name,
            "in": "query",
            "required": False,
            "schema": {"type": _TYPES[p.kind]},
            **({"description": p.doc} if p.doc else {}),
        }
        for p in route.params
    ]
    media = [m for m, _ in PRODUCES]
    ok = {"type": "string"} if route.raw else route.returns or {"type": "object"}
    error = {m: {"schema": {"$ref": "#/components/schemas/ErrorMessage"}} for m in media}
    op: dict[str, Any] = {
        "summary": route.summary,
        "operationId": f"{route.method.lower()}_{route.path}",
        "parameters": params,
        "responses": {
            "200": {"description": "OK", "content": {m: {"schema": ok} for m in media}},
            "default": {"description": "Confluent error body", "content": error},
        },
    }
    if route.body:
        ref = {"$ref": f"#/components/schemas/{route.body}"}
        op["requestBody"] = {
            "required": True,
            "content": {m: {"schema": ref} for m in CONSUMES if m.endswith("json")},
        }
    return op


def openapi(routes: list[Route]) -> dict[str, Any]:
    """The OpenAPI document of ``routes``."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "eventlake schema registry (Confluent Schema Registry REST API)",
            "version": "1",
        },
        "paths": paths,
        "components": {"schemas": COMPONENTS},
    }
