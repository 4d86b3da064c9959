"""Invariants 1 and 2 as functions of the lake, ready for asset checks.

- :func:`offset_continuity`: every Kafka offset at most once per partition of a
  bronze table (gaps are reported: transactional topics have them for commit
  markers).
- :func:`decode_coverage`: every bronze offset is in exactly one of silver or
  dead letters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow.compute as pc

from lake.catalog import Lake
from lake.dead_letters import decode_cursor
from lake.names import DEAD_LETTERS, KAFKA_OFFSET, KAFKA_PARTITION, KAFKA_TOPIC, bronze, layer_of

__all__ = ["PartitionCoverage", "PartitionOffsets", "decode_coverage", "offset_continuity"]


@dataclass(frozen=True)
class PartitionOffsets:
    """One bronze partition's offsets: ``duplicated`` must be 0; ``missing`` counts gaps."""

    partition: int
    rows: int
    first: int
    last: int
    duplicated: int
    missing: int


def offset_continuity(lake: Lake, topic: str) -> list[PartitionOffsets]:
    """Per partition of ``bronze/<topic>``: rows, offset range, duplicates and gaps
    ([] when the table does not exist yet).

    >>> import tempfile
    >>> from lake.bronze import BronzeTable, bronze_rows
    >>> lake = Lake(tempfile.mkdtemp())
    >>> _ = BronzeTable.open(lake, "t").append(
    ...     bronze_rows("t", [0, 0], [0, 2], [(1, 0)] * 2, [None] * 2, [b"a", b"b"], [None] * 2))
    >>> offset_continuity(lake, "t")
    [PartitionOffsets(partition=0, rows=2, first=0, last=2, duplicated=0, missing=1)]
    """
    if not lake.exists(bronze(topic)):
        return []
    stats = (
        lake.scan(bronze(topic))
        .group_by("partition")
        .agg(
            pl.len().alias("rows"),
            pl.col("offset").n_unique().alias("distinct"),
            pl.col("offset").min().alias("first"),
            pl.col("offset").max().alias("last"),
        )
        .sort("partition")
        .collect()
    )
    return [
        PartitionOffsets(p, n, a, b, n - d, b - a + 1 - d)
        for p, n, d, a, b in stats.select(
            "partition", "rows", "distinct", "first", "last"
        ).iter_rows()
    ]


@dataclass(frozen=True)
class PartitionCoverage:
    """One partition's reconciliation; ``ok`` when nothing is missing or doubled."""

    partition: int
    bronze: int
    silver: int
    dead_letters: int
    missing: list[int]
    duplicated: list[int]

    @property
    def ok(self) -> bool:
        return not self.missing and not self.duplicated


def _offsets(
    lake: Lake, name: str, topic_col: str, part_col: str, off_col: str, topic: str
) -> dict[int, np.ndarray]:
    if not lake.exists(name):
        return {}
    t = (
        lake.table(name)
        .to_pyarrow_dataset()
        .to_table(columns=[part_col, off_col], filter=pc.field(topic_col) == topic)
    )
    parts = t.column(part_col).to_numpy()
    offs = t.column(off_col).to_numpy()
    return {int(p): offs[parts == p] for p in np.unique(parts)}


def decode_coverage(
    lake: Lake, topic: str, *, decoded_only: bool = False
) -> list[PartitionCoverage]:
    """Reconcile ``bronze/<topic>`` with every silver table and ``dead_letters``.

    Ready for an asset check: all ``ok`` means invariant 2 holds for the topic.
    With ``decoded_only``, only bronze offsets up to the decode cursor are
    expected downstream, so a live ingest's newest records do not count as
    missing; without it, pass after an ingest run has finished.
    """
    found = _offsets(lake, bronze(topic), "topic", "partition", "offset", topic)
    down: dict[int, list[np.ndarray]] = {}
    silver_counts: dict[int, int] = {}
    for name in lake.names():
        if layer_of(name)[0] != "silver":
            continue
        for p, o in _offsets(lake, name, KAFKA_TOPIC, KAFKA_PARTITION, KAFKA_OFFSET, topic).items():
            down.setdefault(p, []).append(o)
            silver_counts[p] = silver_counts.get(p, 0) + len(o)
    dead = _offsets(lake, DEAD_LETTERS, "topic", "partition", "offset", topic)
    for p, o in dead.items():
        down.setdefault(p, []).append(o)
    upto = decode_cursor(lake, topic, list(found)) if decoded_only else None
    out = []
    for p in sorted(set(found) | set(down)):
        got = np.concatenate(down.get(p, [np.zeros(0, np.int64)]))
        values, counts = np.unique(got, return_counts=True)
        expected = found.get(p, np.zeros(0, np.int64))
        if upto is not None:
            limit = upto.get(p)
            expected = expected[expected <= (-1 if limit is None else limit)]
        missing = np.setdiff1d(expected, values)
        out.append(
            PartitionCoverage(
                p,
                len(expected),
                silver_counts.get(p, 0),
                len(dead.get(p, [])),
                missing.tolist(),
                values[counts > 1].tolist(),
            )
        )
    return out
