"""lake.BronzeTable: the columns of a record, and offsets fenced at commit."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake

from lake import BRONZE_SCHEMA, BronzeTable, Lake, bronze_rows, txn_app_id


def _rows(partition: int, offsets: range) -> pa.Table:
    n = len(offsets)
    return bronze_rows(
        "t",
        [partition] * n,
        list(offsets),
        [(1, 1_700_000_000_000)] * n,
        [None] * n,
        [f"{partition}:{o}".encode() for o in offsets],
        [None] * n,
    )


def test_columns_keep_every_part_of_a_record(tmp_path):
    t = bronze_rows(
        "orders",
        [2, 2, 2],
        [10, 11, 12],
        [(1, 1_763_683_200_123), (2, 1_763_683_200_456), (0, -1)],
        [b"key", None, b""],
        [b"\x00\x00\x00\x01\x2cAVRO", None, b"\x00\x00\x00"],  # framed, tombstone, too short
        [[("trace", b"abc"), ("empty", b"")], None, []],
        ingested_at_us=1_763_769_600_000_000,
    )
    assert t.schema == BRONZE_SCHEMA
    bt = BronzeTable.open(Lake(str(tmp_path)), "orders")
    assert bt.append(t).ranges == {2: (10, 12)}
    back = DeltaTable(str(tmp_path / "bronze" / "orders")).to_pyarrow_table().sort_by("offset")
    assert back.column("key").to_pylist() == [b"key", None, b""]
    assert back.column("value").to_pylist() == [b"\x00\x00\x00\x01\x2cAVRO", None, b"\x00\x00\x00"]
    assert back.column("schema_id").to_pylist() == [300, None, None]
    assert back.column("timestamp_type").to_pylist() == [1, 2, 0]
    utc = dt.UTC
    assert back.column("timestamp").to_pylist() == [
        dt.datetime(2025, 11, 21, 0, 0, 0, 123000, tzinfo=utc),
        dt.datetime(2025, 11, 21, 0, 0, 0, 456000, tzinfo=utc),
        None,
    ]
    # No Kafka timestamp: the row's day is the ingestion day.
    assert back.column("date").to_pylist() == [dt.date(2025, 11, 21)] * 2 + [dt.date(2025, 11, 22)]
    assert back.column("headers").to_pylist() == [
        [{"key": "trace", "value": b"abc"}, {"key": "empty", "value": b""}],
        None,
        [],
    ]


def test_append_drops_offsets_already_committed(tmp_path):
    bt = BronzeTable.open(Lake(str(tmp_path)), "t")
    assert bt.append(_rows(0, range(0, 100))).ranges == {0: (0, 99)}
    # A zombie writer re-sends 50..149: only 100..149 are new.
    result = bt.append(_rows(0, range(50, 150)))
    assert (result.rows, result.dropped, result.ranges) == (50, 50, {0: (100, 149)})
    nothing = bt.append(_rows(0, range(0, 150)))
    assert (nothing.version, nothing.rows, nothing.dropped) == (None, 0, 150)
    offsets = DeltaTable(str(tmp_path / "bronze" / "t")).to_pyarrow_table().column("offset")
    assert sorted(offsets.to_pylist()) == list(range(150))
    assert bt.committed([0, 1]) == {0: 149, 1: None}


def test_a_concurrent_commit_of_the_same_partition_is_detected_and_fenced(tmp_path):
    bt = BronzeTable.open(Lake(str(tmp_path)), "t")
    bt.append(_rows(1, range(0, 10)))
    # Another process commits offsets 10..19 of partition 1 behind our snapshot's back.
    other = DeltaTable(bt.uri)
    write_deltalake(
        other,
        _rows(1, range(10, 20)),
        mode="append",
        partition_by=["date"],
        commit_properties=CommitProperties(app_transactions=[Transaction(txn_app_id("t", 1), 19)]),
    )
    result = bt.append(_rows(1, range(10, 25)))
    assert (result.rows, result.dropped, result.ranges) == (5, 10, {1: (20, 24)})
    offsets = DeltaTable(bt.uri).to_pyarrow_table().column("offset").to_pylist()
    assert sorted(offsets) == list(range(25))


def test_other_partitions_commit_concurrently_without_loss(tmp_path):
    a = BronzeTable.open(Lake(str(tmp_path)), "t")
    b = BronzeTable.open(Lake(str(tmp_path)), "t")
    for i in range(5):
        a.append(_rows(0, range(i * 10, i * 10 + 10)))
        b.append(_rows(1, range(i * 10, i * 10 + 10)))
    t = DeltaTable(a.uri).to_pyarrow_table()
    assert t.num_rows == 100
    assert a.committed([0, 1]) == {0: 49, 1: 49}
