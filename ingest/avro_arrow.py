"""Avro schemas as Arrow/Delta types, and Avro records as Arrow rows.

Mapping (Delta has no time or union types, hence the choices marked *):

| Avro | Arrow / Delta |
| --- | --- |
| boolean, string, bytes | bool, string, binary |
| int, long | int64 (* widened up front: int -> long promotions need no rewrite) |
| float, double | float64 (* likewise for float -> double) |
| enum | string (the symbol) |
| fixed | binary |
| record | struct |
| array | list |
| map | map<string, value> |
| union of null and one type | that type, nullable |
| other unions | string: the value as JSON * |
| date | date32 |
| time-millis, time-micros | int64 microseconds after midnight * |
| timestamp-millis, timestamp-micros | timestamp[us, UTC] |
| local-timestamp-millis/micros | timestamp[us] (no time zone) |
| decimal (bytes or fixed) | decimal128(precision, scale) |
| uuid | string |

A silver table's schema is the merge of every registered version of its
subject: every field that ever existed, widened where a promotion happened
(long -> double becomes double). Each record is decoded with its own writer
schema; a field its writer did not have is filled with the field's default
from the newest version that declares one, else null.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Callable, Sequence
from typing import Any

import fastavro
import pyarrow as pa

from lake.names import UTC_MICROS

__all__ = ["SilverShape", "arrow_type", "converter", "decode_body", "silver_shape"]

_PRIMITIVES: dict[str, pa.DataType] = {
    "boolean": pa.bool_(),
    "int": pa.int64(),
    "long": pa.int64(),
    "float": pa.float64(),
    "double": pa.float64(),
    "string": pa.string(),
    "bytes": pa.binary(),
    "null": pa.null(),
}


def _name(schema: dict[str, Any], namespace: str | None) -> str:
    name = schema["name"]
    ns = schema.get("namespace", namespace)
    return name if "." in name or not ns else f"{ns}.{name}"


def arrow_type(
    schema: Any, names: dict[str, Any] | None = None, namespace: str | None = None
) -> pa.DataType:
    """The Arrow type of an Avro schema (JSON-decoded).

    >>> arrow_type(["null", {"type": "array", "items": "int"}])
    ListType(list<item: int64>)
    >>> arrow_type({"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2})
    Decimal128Type(decimal128(9, 2))
    """
    names = {} if names is None else names
    if isinstance(schema, str):
        if schema in _PRIMITIVES:
            return _PRIMITIVES[schema]
        full = schema if "." in schema or not namespace else f"{namespace}.{schema}"
        target = names.get(full, names.get(schema))
        if target is None:
            raise ValueError(f"unknown Avro type name {schema!r}")
        return target
    if isinstance(schema, list):
        branches = [b for b in schema if b != "null"]
        if len(branches) == 1:
            return arrow_type(branches[0], names, namespace)
        for b in branches:
            arrow_type(b, names, namespace)  # registers the named types it defines
        return pa.string()
    kind = schema["type"]
    logical = schema.get("logicalType")
    if logical == "decimal" and kind in ("bytes", "fixed"):
        return pa.decimal128(schema["precision"], schema.get("scale", 0))
    if logical == "date" and kind == "int":
        return pa.date32()
    if logical in ("timestamp-millis", "timestamp-micros") and kind == "long":
        return UTC_MICROS
    if logical in ("local-timestamp-millis", "local-timestamp-micros") and kind == "long":
        return pa.timestamp("us")
    if kind == "record":
        full = _name(schema, namespace)
        ns = full.rpartition(".")[0] or None
        struct = pa.struct(
            [pa.field(f["name"], arrow_type(f["type"], names, ns)) for f in schema["fields"]]
        )
        names[full] = struct
        return struct
    if kind == "enum":
        names[_name(schema, namespace)] = pa.string()
        return pa.string()
    if kind == "fixed":
        names[_name(schema, namespace)] = pa.binary()
        return pa.binary()
    if kind == "array":
        return pa.list_(arrow_type(schema["items"], names, namespace))
    if kind == "map":
        return pa.map_(pa.string(), arrow_type(schema["values"], names, namespace))
    return arrow_type(kind, names, namespace)  # {"type": "string", "logicalType": "uuid"}, ...


def _widen(a: pa.DataType, b: pa.DataType, field: str) -> pa.DataType:
    if a == b:
        return a
    if {a, b} <= {pa.int64(), pa.float64()}:
        return pa.float64()
    if {a, b} <= {pa.string(), pa.binary()}:
        return pa.binary()
    if pa.types.is_struct(a) and pa.types.is_struct(b):
        merged = {f.name: f.type for f in a}
        for f in b:
            merged[f.name] = (
                _widen(merged[f.name], f.type, f"{field}.{f.name}") if f.name in merged else f.type
            )
        return pa.struct([pa.field(n, t) for n, t in merged.items()])
    raise ValueError(
        f"field {field!r} changes from {a} to {b}, which a silver column cannot "
        "follow; rebuild the table from bronze under a new subject"
    )


class SilverShape:
    """The merged Arrow schema of a subject's versions, and the defaults for missing fields."""

    def __init__(self, schema: pa.Schema, defaults: dict[str, Any]) -> None:
        self.schema = schema
        self.defaults = defaults


def silver_shape(versions: Sequence[str]) -> SilverShape:
    """Merge the record schemas of a subject's versions (oldest first).

    >>> v1 = '{"type":"record","name":"O","fields":[{"name":"a","type":"int"}]}'
    >>> v2 = ('{"type":"record","name":"O","fields":[{"name":"a","type":"long"},'
    ...       '{"name":"b","type":"string","default":"x"}]}')
    >>> s = silver_shape([v1, v2])
    >>> s.schema.names, s.defaults
    (['a', 'b'], {'b': 'x'})
    """
    types: dict[str, pa.DataType] = {}
    defaults: dict[str, Any] = {}
    for text in versions:
        schema = json.loads(text)
        if not isinstance(schema, dict) or schema.get("type") != "record":
            raise ValueError(
                "silver tables hold Avro records; this subject's schema is "
                f"{json.dumps(schema)[:80]}"
            )
        names: dict[str, Any] = {}
        namespace = _name(schema, None).rpartition(".")[0] or None
        for f in schema["fields"]:
            t = arrow_type(f["type"], names, namespace)
            types[f["name"]] = _widen(types[f["name"]], t, f["name"]) if f["name"] in types else t
            if "default" in f:
                defaults[f["name"]] = f["default"]
    return SilverShape(pa.schema([pa.field(n, t) for n, t in types.items()]), defaults)


def _time_us(value: dt.time) -> int:
    return ((value.hour * 60 + value.minute) * 60 + value.second) * 1_000_000 + value.microsecond


def _json(value: Any) -> str:
    return json.dumps(value, default=str, sort_keys=True)


Converter = Callable[[Any], Any]


def converter(
    schema: Any, names: dict[str, Converter | None] | None = None, namespace: str | None = None
) -> Converter | None:
    """A function turning fastavro's value for ``schema`` into what pyarrow takes
    for :func:`arrow_type` (None: the value is already right).

    >>> import uuid
    >>> converter({"type": "string", "logicalType": "uuid"})(uuid.UUID(int=1))
    '00000000-0000-0000-0000-000000000001'
    """
    names = {} if names is None else names
    if isinstance(schema, str):
        if schema in _PRIMITIVES:
            return None
        full = schema if "." in schema or not namespace else f"{namespace}.{schema}"
        return names.get(full, names.get(schema))
    if isinstance(schema, list):
        branches = [b for b in schema if b != "null"]
        if len(branches) == 1:
            inner = converter(branches[0], names, namespace)
            return None if inner is None else (lambda v: None if v is None else inner(v))
        for b in branches:
            converter(b, names, namespace)
        return lambda v: None if v is None else _json(v)
    kind, logical = schema["type"], schema.get("logicalType")
    if logical == "uuid":
        return lambda v: None if v is None else str(v)
    if logical in ("time-millis", "time-micros"):
        return lambda v: None if v is None else _time_us(v)
    if kind == "record":
        full = _name(schema, namespace)
        ns = full.rpartition(".")[0] or None
        names[full] = None  # recursive references: resolved below
        fields = [(f["name"], converter(f["type"], names, ns)) for f in schema["fields"]]
        active = [(n, c) for n, c in fields if c is not None]
        conv: Converter | None = None
        if active:

            def conv(v: Any) -> Any:
                if v is None:
                    return None
                out = dict(v)
                for n, c in active:
                    out[n] = c(v[n])
                return out

        names[full] = conv
        return conv
    if kind in ("enum", "fixed"):
        names[_name(schema, namespace)] = None
        return None
    if kind == "array":
        item = converter(schema["items"], names, namespace)
        return None if item is None else (lambda v: None if v is None else [item(x) for x in v])
    if kind == "map":
        val = converter(schema["values"], names, namespace)
        return (
            None
            if val is None
            else (lambda v: None if v is None else {k: val(x) for k, x in v.items()})
        )
    return None


def decode_body(
    body: bytes, writer: Any, convert: Converter | None, reader: Any = None
) -> dict[str, Any]:
    """Decode one Avro binary body with its fastavro-parsed writer schema (resolved
    into ``reader`` if given, by Avro's schema-resolution rules).

    Raises on truncated or corrupt input, and on trailing bytes.
    """
    buf = io.BytesIO(body)
    record = fastavro.schemaless_reader(buf, writer, reader)
    if buf.tell() != len(body):
        raise ValueError(f"{len(body) - buf.tell()} bytes left over after the record")
    if not isinstance(record, dict):
        raise ValueError("the writer schema is not a record")
    return convert(record) if convert is not None else record
