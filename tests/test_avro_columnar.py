"""The columnar Avro path gives exactly what fastavro gives, or declines."""

from __future__ import annotations

import io
import json
import random

import fastavro
import pyarrow as pa
import pytest

from ingest.avro_arrow import converter, decode_body, silver_shape
from ingest.avro_columnar import decode_columnar, guarded_schema
from tests.test_avro_arrow import EVERYTHING, random_record

COLUMNAR_FIELDS = {
    "b",
    "i",
    "l",
    "f",
    "d",
    "s",
    "raw",
    "e",
    "fx",
    "arr",
    "opt",
    "day",
    "tm",
    "tu",
    "ts_ms",
    "ts_us",
    "local",
    "dec",
    "decfx",
    "id",
}
SCHEMA = {**EVERYTHING, "fields": [f for f in EVERYTHING["fields"] if f["name"] in COLUMNAR_FIELDS]}


def framed(schema: dict, records: list[dict], schema_id: int = 7) -> list[bytes]:
    parsed = fastavro.parse_schema(schema)
    out = []
    for r in records:
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, parsed, r)
        out.append(b"\x00" + schema_id.to_bytes(4, "big") + buf.getvalue())
    return out


def reference(schema: dict, values: list[bytes]) -> pa.Table:
    parsed, conv = fastavro.parse_schema(schema), converter(schema)
    shape = silver_shape([json.dumps(schema)])
    return pa.Table.from_pylist(
        [decode_body(v[5:], parsed, conv) for v in values], schema=shape.schema
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_columnar_equals_fastavro_for_every_supported_type(seed):
    rng = random.Random(seed)
    records = [
        {k: v for k, v in random_record(rng).items() if k in COLUMNAR_FIELDS} for _ in range(500)
    ]
    values = framed(SCHEMA, records)
    guarded = guarded_schema(SCHEMA)
    assert guarded is not None
    want = reference(SCHEMA, values)
    got = decode_columnar(pa.array(values, pa.binary()), guarded, want.schema)
    assert got is not None
    assert got.schema == want.schema
    for name in want.column_names:
        assert got.column(name).to_pylist() == want.column(name).to_pylist(), name


@pytest.mark.parametrize("field", ["m", "rec", "multi"])
def test_unsupported_shapes_take_the_fastavro_path(field):
    only = [f for f in EVERYTHING["fields"] if f["name"] == field]
    assert guarded_schema({**EVERYTHING, "fields": only}) is None


@pytest.mark.parametrize(
    "damage",
    ["trailing byte on the last record", "trailing byte in the middle", "truncated record"],
)
def test_misaligned_blocks_are_refused(damage):
    schema = {
        "type": "record",
        "name": "R",
        "fields": [{"name": "n", "type": "long"}, {"name": "s", "type": "string"}],
    }
    values = framed(schema, [{"n": i, "s": "x" * i} for i in range(10)])
    if damage == "trailing byte on the last record":
        values[-1] += b"\x02"
    elif damage == "trailing byte in the middle":
        values[4] += b"\x00"
    else:
        values[4] = values[4][:-2]
    target = silver_shape([json.dumps(schema)]).schema
    assert decode_columnar(pa.array(values, pa.binary()), guarded_schema(schema), target) is None
