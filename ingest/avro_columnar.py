"""Columnar decoding of many Avro bodies of one writer schema at once.

The bodies are laid out as one block of an Avro object container file and read
by Polars' Rust Avro reader: about 4e6 records/s here, against 1.7e5 for
per-record fastavro. A block only says how many records and how many bytes it
holds, so a record with trailing garbage could shift every record after it
undetected. To rule that out each body is followed by an 8-byte random marker,
read as an extra last field of the record (a record's encoding is its fields'
encodings in order): the block is accepted only if every record ends exactly
where its marker begins. Anything else (an error, a panic, a marker out of
place) returns None and the caller falls back to fastavro, record by record.

Only schemas whose every field type has been checked against fastavro take
this path (:func:`guarded_schema`): primitives, enums, fixed, arrays of
primitives, null-unions of those, and the date, time, timestamp, decimal and
uuid logical types. Maps, other unions and nested records go to fastavro.
"""

from __future__ import annotations

import io
import json
import os
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["decode_columnar", "guarded_schema"]

GUARD = "__eventlake_guard__"
_PRIMITIVE = {"boolean", "int", "long", "float", "double", "string", "bytes"}
_LOGICAL = {
    "date",
    "time-millis",
    "time-micros",
    "timestamp-millis",
    "timestamp-micros",
    "local-timestamp-millis",
    "local-timestamp-micros",
    "decimal",
    "uuid",
}


def _plain(t: Any) -> bool:
    if isinstance(t, str):
        return t in _PRIMITIVE
    if isinstance(t, dict):
        if t.get("logicalType") in _LOGICAL:
            return t["type"] in _PRIMITIVE or t["type"] == "fixed"
        return t.get("type") in _PRIMITIVE
    return False


def _supported(t: Any) -> bool:
    if _plain(t):
        return True
    if isinstance(t, list):
        rest = [b for b in t if b != "null"]
        return len(t) == 2 and len(rest) == 1 and _plain(rest[0])
    if isinstance(t, dict):
        if t.get("type") in ("enum", "fixed"):
            return True
        if t.get("type") == "array":
            return _plain(t["items"])
    return False


def guarded_schema(schema: Any) -> str | None:
    """The writer record schema with the guard field appended, or None when the
    columnar path does not support one of its fields.

    >>> s = guarded_schema({"type": "record", "name": "R",
    ...                     "fields": [{"name": "a", "type": "int"}]})
    >>> [f["name"] for f in json.loads(s)["fields"]]
    ['a', '__eventlake_guard__']
    >>> guarded_schema({"type": "record", "name": "R", "fields": [
    ...     {"name": "m", "type": {"type": "map", "values": "int"}}]}) is None
    True
    """
    if not isinstance(schema, dict) or schema.get("type") != "record":
        return None
    if not all(_supported(f["type"]) for f in schema["fields"]):
        return None
    guard = {"name": GUARD, "type": {"type": "fixed", "name": GUARD, "size": 8}}
    return json.dumps({**schema, "fields": [*schema["fields"], guard]})


def _zigzag(n: int) -> bytes:
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n & ~0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _container(schema_json: str, body: bytes, count: int) -> bytes:
    sync = os.urandom(16)
    meta = {"avro.schema": schema_json.encode(), "avro.codec": b"null"}
    header = (
        b"Obj\x01"
        + _zigzag(len(meta))
        + b"".join(_zigzag(len(k)) + k.encode() + _zigzag(len(v)) + v for k, v in meta.items())
        + _zigzag(0)
        + sync
    )
    return header + _zigzag(count) + _zigzag(len(body)) + body + sync


def decode_columnar(values: pa.Array, guarded: str, target: pa.Schema) -> pa.Table | None:
    """Decode Confluent-framed ``values`` (all non-null, one schema id) into ``target``
    types; None when the block does not decode exactly (the caller falls back)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    values = values.cast(pa.binary())
    n = len(values)
    if n == 0 or values.null_count:
        return None
    marker = os.urandom(8)
    # body_i + marker for every record, concatenated: the data buffer of an
    # element-wise join, built in Arrow's C++ without a Python loop.
    bodies = pc.binary_slice(values, 5, 2**31 - 1)
    joined = pc.binary_join_element_wise(
        bodies, pa.scalar(marker, pa.binary()), pa.scalar(b"", pa.binary())
    )
    if joined.null_count:
        return None
    offs = np.frombuffer(joined.buffers()[1], np.int32, n + 1, offset=joined.offset * 4)
    block = joined.buffers()[2].to_pybytes()[offs[0] : offs[-1]]
    try:
        df = pl.read_avro(io.BytesIO(_container(guarded, block, n)))
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException:
        return None
    if df.height != n:
        return None
    table = df.to_arrow()
    guard = table.column(GUARD).cast(pa.binary())
    if not pc.all(pc.equal(guard, pa.scalar(marker, pa.binary()))).as_py():
        return None
    columns = []
    for field in target:
        col = table.column(field.name)
        if pa.types.is_time(col.type):
            col = pc.divide(col.cast(pa.time64("ns")).cast(pa.int64()), 1000)
        elif pa.types.is_dictionary(col.type):
            col = col.cast(col.type.value_type)
        columns.append(col.cast(field.type))
    return pa.Table.from_arrays(columns, schema=target)
