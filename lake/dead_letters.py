"""The ``dead_letters`` table: every record that could not be decoded, kept whole.

Columns: the bronze record (``topic``, ``partition``, ``offset``, ``timestamp``,
``key``, ``value``, ``headers``, ``schema_id``), why it failed (``error_kind``,
``error_message``), ``quarantined_at``, and the partition column ``date``.

The table also keeps the decode cursor of every topic-partition (a ``txn``
action, :func:`lake.offsets.decoded_app_id`): each bronze offset up to it is in
exactly one of its silver table or here. It is committed last in each decode
step, so a crash in between is repaired by decoding again from the cursor.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable, Transaction

from lake.bronze import HEADERS_TYPE
from lake.catalog import Lake
from lake.fenced import AppendResult, fenced_append
from lake.names import DEAD_LETTERS, UTC_MICROS, validate_name
from lake.offsets import dead_letter_app_id, decoded_app_id, txn_versions

__all__ = ["DEAD_LETTER_SCHEMA", "DeadLetters", "decode_cursor"]

DEAD_LETTER_SCHEMA = pa.schema(
    [
        pa.field("topic", pa.string(), nullable=False),
        pa.field("partition", pa.int32(), nullable=False),
        pa.field("offset", pa.int64(), nullable=False),
        pa.field("timestamp", UTC_MICROS),
        pa.field("key", pa.binary()),
        pa.field("value", pa.binary()),
        pa.field("headers", HEADERS_TYPE),
        pa.field("schema_id", pa.int32()),
        pa.field("error_kind", pa.string(), nullable=False),
        pa.field("error_message", pa.string(), nullable=False),
        pa.field("quarantined_at", UTC_MICROS, nullable=False),
        pa.field("date", pa.date32(), nullable=False),
    ]
)


class DeadLetters:
    """The lake's ``dead_letters`` table."""

    def __init__(self, table: DeltaTable, lake: Lake) -> None:
        self._table = table
        self.lake = lake

    @classmethod
    def open(cls, lake: Lake) -> DeadLetters:
        """Open (creating if needed) the ``dead_letters`` table of ``lake``."""
        table = lake.open_or_create(
            DEAD_LETTERS,
            DEAD_LETTER_SCHEMA,
            partition_by=["date"],
            description="Records that could not be decoded, kept whole",
        )
        return cls(table, lake)

    @property
    def delta(self) -> DeltaTable:
        """The underlying Delta table."""
        return self._table

    def decoded(self, topic: str, partitions: Iterable[int]) -> dict[int, int | None]:
        """The decode cursor per partition: last bronze offset decoded (None: none yet)."""
        self._table.update_incremental()
        return txn_versions(self._table, lambda p: decoded_app_id(topic, p), partitions)

    def append(self, topic: str, rows: pa.Table, cursor: Mapping[int, int]) -> AppendResult:
        """Quarantine ``rows`` of ``topic`` and move its decode cursor to ``cursor``.

        Always commits (even with no rows) so the cursor lands.
        """
        validate_name(topic)
        return fenced_append(
            self._table,
            rows.select(DEAD_LETTER_SCHEMA.names).cast(DEAD_LETTER_SCHEMA),
            app_id=lambda p: dead_letter_app_id(topic, p),
            partition="partition",
            offset="offset",
            partition_by=["date"],
            extra_txns=lambda: [
                Transaction(decoded_app_id(topic, p), o) for p, o in cursor.items()
            ],
            commit_empty=True,
            storage_options=self.lake.storage_options,
            label=DEAD_LETTERS,
        )

    def read(self, topic: str | None = None) -> pa.Table:
        """Dead letters (of ``topic``), oldest offset first."""
        self._table.update_incremental()
        t = self._table.to_pyarrow_table()
        if topic is not None:
            t = t.filter(pc.equal(t.column("topic"), topic))
        return t.sort_by(
            [("topic", "ascending"), ("partition", "ascending"), ("offset", "ascending")]
        )

    def remove(self, topic: str, partition: int, offsets: Iterable[int]) -> int:
        """Delete the dead letters of ``topic[partition]`` at ``offsets``; return how many."""
        validate_name(topic)
        wanted = sorted({int(o) for o in offsets})
        if not wanted:
            return 0
        metrics = self._table.delete(
            f"topic = '{topic}' AND \"partition\" = {int(partition)} AND "
            f'"offset" IN ({", ".join(map(str, wanted))})'
        )
        return int(metrics.get("num_deleted_rows", 0))


def decode_cursor(lake: Lake, topic: str, partitions: Iterable[int]) -> dict[int, int | None]:
    """The decode cursor of ``topic`` per partition, read without creating ``dead_letters``
    (all None when it does not exist: nothing decoded yet).

    >>> import tempfile
    >>> decode_cursor(Lake(tempfile.mkdtemp()), "orders", [0, 1])
    {0: None, 1: None}
    """
    parts = list(partitions)
    if not lake.exists(DEAD_LETTERS):
        return dict.fromkeys(parts)
    return txn_versions(lake.table(DEAD_LETTERS), lambda p: decoded_app_id(topic, p), parts)
