"""Producing known records per partition so tests can check every byte."""

from __future__ import annotations

import random

import pyarrow as pa

from ingest import Record, produce


def produce_known(
    bootstrap: str,
    topic: str,
    partitions: int,
    per_partition: int,
    *,
    seed: int = 1,
    start: int = 0,
) -> dict[int, list[bytes]]:
    """Produce ``per_partition`` records to each partition; return the values by partition.

    Records go to explicit partitions through an idempotent producer, so the
    i-th value of partition p sits at offset ``start + i``.
    """
    rng = random.Random(seed)
    values: dict[int, list[bytes]] = {p: [] for p in range(partitions)}
    records = []
    for i in range(per_partition):
        for p in range(partitions):
            v = f"{p}:{start + i}:".encode() + rng.randbytes(rng.randrange(0, 64))
            values[p].append(v)
            records.append(Record(f"k{i % 97}".encode(), v, None, p))
    produce(bootstrap, topic, records)
    return values


def assert_exactly_once(table: pa.Table, expected: dict[int, list[bytes]]) -> None:
    """Every (partition, offset) once, no gaps, and the bytes that were produced."""
    for p, values in expected.items():
        part = table.filter(pa.compute.equal(table.column("partition"), p))
        offsets = part.column("offset").to_pylist()
        assert offsets == list(range(len(values))), (
            f"partition {p}: {len(offsets)} rows, {len(set(offsets))} distinct offsets, "
            f"expected 0..{len(values) - 1}"
        )
        assert part.column("value").to_pylist() == values, f"partition {p}: payload differs"
    assert table.num_rows == sum(len(v) for v in expected.values())
