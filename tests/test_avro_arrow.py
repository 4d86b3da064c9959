"""Avro -> Arrow: every supported type, checked against fastavro as the reference."""

from __future__ import annotations

import datetime as dt
import decimal
import io
import json
import random
import uuid

import fastavro
import pyarrow as pa
import pytest

from ingest.avro_arrow import arrow_type, converter, decode_body, silver_shape

EVERYTHING = {
    "type": "record",
    "name": "Everything",
    "namespace": "t",
    "fields": [
        {"name": "b", "type": "boolean"},
        {"name": "i", "type": "int"},
        {"name": "l", "type": "long"},
        {"name": "f", "type": "float"},
        {"name": "d", "type": "double"},
        {"name": "s", "type": "string"},
        {"name": "raw", "type": "bytes"},
        {"name": "e", "type": {"type": "enum", "name": "Color", "symbols": ["RED", "GREEN"]}},
        {"name": "fx", "type": {"type": "fixed", "name": "Four", "size": 4}},
        {"name": "arr", "type": {"type": "array", "items": "int"}},
        {"name": "m", "type": {"type": "map", "values": "double"}},
        {
            "name": "rec",
            "type": {
                "type": "record",
                "name": "Inner",
                "fields": [
                    {"name": "x", "type": "int"},
                    {"name": "tags", "type": {"type": "array", "items": "string"}},
                ],
            },
        },
        {"name": "again", "type": ["null", "Inner"]},
        {"name": "opt", "type": ["null", "string"]},
        {"name": "multi", "type": ["null", "int", "string"]},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "tm", "type": {"type": "int", "logicalType": "time-millis"}},
        {"name": "tu", "type": {"type": "long", "logicalType": "time-micros"}},
        {"name": "ts_ms", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "ts_us", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "local", "type": {"type": "long", "logicalType": "local-timestamp-micros"}},
        {
            "name": "dec",
            "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2},
        },
        {
            "name": "decfx",
            "type": {
                "type": "fixed",
                "name": "D8",
                "size": 8,
                "logicalType": "decimal",
                "precision": 12,
                "scale": 3,
            },
        },
        {"name": "id", "type": {"type": "string", "logicalType": "uuid"}},
    ],
}


def random_record(rng: random.Random) -> dict:
    utc = dt.UTC
    return {
        "b": rng.random() < 0.5,
        "i": rng.randint(-(2**31), 2**31 - 1),
        "l": rng.randint(-(2**63), 2**63 - 1),
        "f": float(rng.randint(-1000, 1000)) / 4,
        "d": rng.uniform(-1e300, 1e300),
        "s": "".join(chr(rng.randint(32, 0x2FFF)) for _ in range(rng.randint(0, 12))),
        "raw": rng.randbytes(rng.randint(0, 20)),
        "e": rng.choice(["RED", "GREEN"]),
        "fx": rng.randbytes(4),
        "arr": [rng.randint(-9, 9) for _ in range(rng.randint(0, 4))],
        "m": {f"k{j}": rng.random() for j in range(rng.randint(0, 3))},
        "rec": {"x": rng.randint(0, 99), "tags": ["a"] * rng.randint(0, 2)},
        "again": None if rng.random() < 0.5 else {"x": 1, "tags": []},
        "opt": None if rng.random() < 0.3 else "yes",
        "multi": rng.choice([None, rng.randint(0, 5), "five"]),
        "day": dt.date(1970, 1, 1) + dt.timedelta(days=rng.randint(-1000, 30000)),
        "tm": dt.time(
            rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59), rng.randint(0, 999) * 1000
        ),
        "tu": dt.time(
            rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59), rng.randint(0, 999_999)
        ),
        "ts_ms": dt.datetime(2020, 1, 1, tzinfo=utc)
        + dt.timedelta(milliseconds=rng.randint(0, 10**11)),
        "ts_us": dt.datetime(2020, 1, 1, tzinfo=utc)
        + dt.timedelta(microseconds=rng.randint(0, 10**14)),
        "local": dt.datetime(2020, 1, 1) + dt.timedelta(microseconds=rng.randint(0, 10**14)),
        "dec": decimal.Decimal(rng.randint(-(10**8), 10**8)) / 100,
        "decfx": decimal.Decimal(rng.randint(-(10**11), 10**11)) / 1000,
        "id": uuid.UUID(int=rng.getrandbits(128)),
    }


def test_every_type_maps_and_round_trips_against_fastavro():
    parsed = fastavro.parse_schema(EVERYTHING)
    conv = converter(EVERYTHING)
    shape = silver_shape([json.dumps(EVERYTHING)])
    rng = random.Random(20261122)
    originals, decoded, reference = [], [], []
    for _ in range(300):
        rec = random_record(rng)
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, parsed, rec)
        body = buf.getvalue()
        originals.append(rec)
        decoded.append(decode_body(body, parsed, conv))
        reference.append(fastavro.schemaless_reader(io.BytesIO(body), parsed, None))
    table = pa.Table.from_pylist(decoded, schema=shape.schema)
    types = dict(zip(table.schema.names, table.schema.types, strict=True))
    assert types["i"] == pa.int64() and types["f"] == pa.float64()
    assert types["e"] == pa.string() and types["fx"] == pa.binary()
    assert types["m"] == pa.map_(pa.string(), pa.float64())
    assert (
        types["again"]
        == types["rec"]
        == pa.struct([("x", pa.int64()), ("tags", pa.list_(pa.string()))])
    )
    assert types["multi"] == pa.string()
    assert types["ts_ms"] == pa.timestamp("us", tz="UTC") and types["local"] == pa.timestamp("us")
    assert types["dec"] == pa.decimal128(9, 2) and types["decfx"] == pa.decimal128(12, 3)
    assert types["tm"] == types["tu"] == pa.int64() and types["day"] == pa.date32()
    rows = table.to_pylist()
    for row, ref in zip(rows, reference, strict=True):
        for key, want in ref.items():
            got = row[key]
            if key == "m":
                got = dict(got)
            elif key in ("tm", "tu"):
                want = (
                    (want.hour * 60 + want.minute) * 60 + want.second
                ) * 10**6 + want.microsecond
            elif key == "id":
                want = str(want)
            elif key == "multi":
                want = None if want is None else json.dumps(want)
            elif key == "again" and want is not None:
                want = dict(want)
            assert got == want, key


def test_corrupt_and_trailing_bytes_are_errors():
    schema = {"type": "record", "name": "R", "fields": [{"name": "s", "type": "string"}]}
    parsed = fastavro.parse_schema(schema)
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, parsed, {"s": "hello"})
    body = buf.getvalue()
    with pytest.raises(EOFError):
        decode_body(body[:-2], parsed, None)  # truncated
    with pytest.raises(ValueError, match="1 bytes left over"):
        decode_body(body + b"x", parsed, None)


def test_merged_shape_widens_and_keeps_removed_fields():
    v1 = {
        "type": "record",
        "name": "O",
        "fields": [{"name": "n", "type": "int"}, {"name": "gone", "type": "string"}],
    }
    v2 = {
        "type": "record",
        "name": "O",
        "fields": [
            {"name": "n", "type": "double"},
            {"name": "new", "type": "string", "default": "?"},
        ],
    }
    shape = silver_shape([json.dumps(v1), json.dumps(v2)])
    assert shape.schema == pa.schema(
        [("n", pa.float64()), ("gone", pa.string()), ("new", pa.string())]
    )
    assert shape.defaults == {"new": "?"}
    v3 = {"type": "record", "name": "O", "fields": [{"name": "n", "type": "boolean"}]}
    with pytest.raises(ValueError, match="field 'n' changes from double to bool"):
        silver_shape([json.dumps(v2), json.dumps(v3)])
    assert arrow_type({"type": "map", "values": ["null", "long"]}) == pa.map_(
        pa.string(), pa.int64()
    )
