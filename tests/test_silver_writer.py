"""SilverWriter on real Delta tables, without a broker: the lagging decode cursor."""

from __future__ import annotations

import io
import json

import fastavro

from ingest import Decoder, SchemaResolver, SilverWriter
from lake import BronzeTable, Lake, SchemaStore, bronze_rows, decode_coverage, decode_cursor
from lake.names import DEAD_LETTERS, registry_table, silver

SCHEMA = json.dumps({"type": "record", "name": "Tick", "fields": [{"name": "n", "type": "long"}]})


def _framed(schema_id: int, n: int) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(json.loads(SCHEMA)), {"n": n})
    return b"\0" + schema_id.to_bytes(4, "big") + buf.getvalue()


def _rows(topic: str, schema_id: int, offsets: range, bad: set[int] = frozenset()):
    values = [b"oops" if o in bad else _framed(schema_id, o) for o in offsets]
    n = len(offsets)
    return bronze_rows(topic, [0] * n, list(offsets), [(1, 0)] * n, [None] * n, values, [None] * n)


def test_the_decoder_writes_nothing(lake_root):
    lake = Lake(lake_root)
    store = SchemaStore.open(lake)
    sid = store.register("t-value", SCHEMA).id
    out = Decoder("t", SchemaResolver(store)).decode(_rows("t", sid, range(0, 40), bad={7, 9}))
    assert out.silver["t-value"].column("n").to_pylist() == [
        n for n in range(40) if n not in (7, 9)
    ]
    assert out.dead.column("offset").to_pylist() == [7, 9]
    assert set(out.dead.column("error_kind").to_pylist()) == {"not_confluent_framed"}
    assert lake.names() == sorted([registry_table("config"), registry_table("schemas")])


def test_the_cursor_lands_with_dead_letters_or_on_flush_and_repair_adds_nothing(lake_root):
    lake = Lake(lake_root)
    store = SchemaStore.open(lake)
    sid = store.register("t-value", SCHEMA).id
    bronze = BronzeTable.open(lake, "t")
    writer = SilverWriter(lake, Decoder("t", SchemaResolver(store)))
    for offsets in (range(0, 50), range(50, 100)):
        rows = _rows("t", sid, offsets)
        bronze.append(rows)
        assert writer.write(rows).silver == {"t-value": 50}
    # No dead letters yet: silver is committed, the cursor is not (nor its table).
    assert lake.exists(silver("t-value")) and not lake.exists(DEAD_LETTERS)
    assert decode_cursor(lake, "t", [0]) == {0: None}
    rows = _rows("t", sid, range(100, 110), bad={105})
    bronze.append(rows)
    assert dict(writer.write(rows).dead) == {"not_confluent_framed": 1}
    assert writer.dead_letters.decoded("t", [0]) == {0: 109}

    rows = _rows("t", sid, range(110, 120))
    bronze.append(rows)
    writer.write(rows)
    assert writer.dead_letters.decoded("t", [0]) == {0: 109}
    # A new process repairs from the cursor: the fence drops what silver has.
    again = SilverWriter(lake, Decoder("t", SchemaResolver(store)))
    assert again.repair(bronze, [0]).silver == {"t-value": 0}
    assert again.dead_letters.decoded("t", [0]) == {0: 119}
    [cov] = decode_coverage(lake, "t")
    assert (cov.bronze, cov.silver, cov.dead_letters, cov.ok) == (120, 119, 1, True)
