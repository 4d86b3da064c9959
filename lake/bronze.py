"""The bronze table of a topic: every Kafka record exactly as received.

Columns (see DESIGN.md "Tables"): ``topic``, ``partition``, ``offset``,
``timestamp`` (Kafka timestamp, UTC), ``timestamp_type`` (0 none, 1 create
time, 2 log-append time), ``key``, ``value``, ``headers``, ``schema_id`` (from
the Confluent wire framing, null where absent), ``ingested_at`` and ``date``
(UTC day of the Kafka timestamp, the partition column).

Appends are fenced by the offsets stored in the Delta log
(:mod:`lake.offsets`): rows at or below a partition's committed offset are
dropped before the commit, and a concurrent commit touching the same
partitions makes delta-rs refuse ours, after which the check runs again. So a
Kafka offset is written at most once, whatever the number of writers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import ColumnProperties, DeltaTable, Transaction, WriterProperties

from lake.catalog import Lake
from lake.errors import SourceChanged
from lake.fenced import AppendResult, fenced_append
from lake.names import UTC_MICROS
from lake.names import bronze as bronze_name
from lake.offsets import committed_offsets, source_app_id, txn_app_id

__all__ = ["BRONZE_SCHEMA", "HEADERS_TYPE", "AppendResult", "BronzeTable", "bronze_rows"]

log = logging.getLogger(__name__)

HEADERS_TYPE: pa.DataType = pa.list_(
    pa.struct([pa.field("key", pa.string()), pa.field("value", pa.binary())])
)
BRONZE_SCHEMA = pa.schema(
    [
        pa.field("topic", pa.string(), nullable=False),
        pa.field("partition", pa.int32(), nullable=False),
        pa.field("offset", pa.int64(), nullable=False),
        pa.field("timestamp", UTC_MICROS),
        pa.field("timestamp_type", pa.int8(), nullable=False),
        pa.field("key", pa.binary()),
        pa.field("value", pa.binary()),
        pa.field("headers", HEADERS_TYPE),
        pa.field("schema_id", pa.int32()),
        pa.field("ingested_at", UTC_MICROS, nullable=False),
        pa.field("date", pa.date32(), nullable=False),
    ]
)
PARTITION_BY = ["date"]
# Dictionary encoding of values, keys and per-record numbers costs a third of the
# Parquet CPU and saves nothing (they rarely repeat); low-cardinality columns keep it.
_WRITER = WriterProperties(
    column_properties={
        c: ColumnProperties(dictionary_enabled=False)
        for c in ("key", "value", "offset", "timestamp", "ingested_at")
    }
)
# File statistics for the columns queries filter on, not for the payload bytes.
TABLE_CONFIGURATION = {
    "delta.dataSkippingStatsColumns": "topic,partition,offset,timestamp,schema_id,ingested_at,date",
}


def _schema_ids(values: pa.BinaryArray) -> pa.Int32Array:
    """Schema ids from the Confluent framing (magic 0 + 4-byte big-endian id)."""
    n = len(values)
    bufs = values.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int32, count=n + 1, offset=values.offset * 4)
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(0, np.uint8)
    starts = offsets[:-1].astype(np.int64)
    framed = (offsets[1:] - offsets[:-1]) >= 5
    if values.null_count:
        framed &= np.asarray(values.is_valid())
    idx = starts[framed]
    framed[framed] = data[idx] == 0
    idx = starts[framed]
    ids = np.zeros(n, dtype=np.int32)
    ids[framed] = (
        (data[idx + 1].astype(np.int32) << 24)
        | (data[idx + 2].astype(np.int32) << 16)
        | (data[idx + 3].astype(np.int32) << 8)
        | data[idx + 4].astype(np.int32)
    )
    return pa.array(ids, mask=~framed)


def bronze_rows(
    topic: str,
    partitions: Sequence[int] | np.ndarray,
    offsets: Sequence[int] | np.ndarray,
    timestamps: Sequence[tuple[int, int]],
    keys: Sequence[bytes | None],
    values: Sequence[bytes | None],
    headers: Sequence[list[tuple[str, bytes]] | None],
    ingested_at_us: int | None = None,
) -> pa.Table:
    """Build bronze rows from the fields of Kafka messages, column by column.

    ``timestamps`` are confluent-kafka ``(type, milliseconds)`` pairs.

    >>> t = bronze_rows("t", [0, 1], [5, 9], [(1, 0), (0, -1)], [b"k", None],
    ...                 [b"\\x00\\x00\\x00\\x00\\x07avro", b"plain"], [None, [("h", b"v")]], 0)
    >>> t.column("schema_id").to_pylist(), t.column("date").to_pylist()
    ([7, None], [datetime.date(1970, 1, 1), datetime.date(1970, 1, 1)])
    """
    n = len(offsets)
    now_us = time.time_ns() // 1000 if ingested_at_us is None else ingested_at_us
    ts_types = np.fromiter((t[0] for t in timestamps), dtype=np.int8, count=n)
    ts_ms = np.fromiter((t[1] for t in timestamps), dtype=np.int64, count=n)
    has_ts = ts_types != 0
    ts = pa.array(ts_ms * 1000, type=pa.int64(), mask=~has_ts).cast(UTC_MICROS)
    ingested = pa.array(np.full(n, now_us, dtype=np.int64)).cast(UTC_MICROS)
    date = pc.cast(pc.coalesce(ts, ingested), pa.date32())
    value_arr = pa.array(values, type=pa.binary())
    if list(headers).count(None) == n:
        header_arr = pa.nulls(n, HEADERS_TYPE)
    else:
        header_arr = pa.array(headers, type=HEADERS_TYPE)
    return pa.Table.from_arrays(
        [
            pa.repeat(pa.scalar(topic, pa.string()), n),
            pa.array(partitions, type=pa.int32()),
            pa.array(offsets, type=pa.int64()),
            ts,
            pa.array(ts_types),
            pa.array(keys, type=pa.binary()),
            value_arr,
            header_arr,
            _schema_ids(value_arr),
            ingested,
            date,
        ],
        schema=BRONZE_SCHEMA,
    )


class BronzeTable:
    """The Delta table ``bronze/<topic>``, opened (and created) for appends.

    >>> import tempfile
    >>> bt = BronzeTable.open(Lake(tempfile.mkdtemp()), "orders")
    >>> rows = bronze_rows("orders", [0, 0], [0, 1], [(1, 0)] * 2, [None] * 2,
    ...                    [b"a", b"b"], [None] * 2)
    >>> bt.append(rows).ranges
    {0: (0, 1)}
    >>> bt.append(rows).dropped   # already committed: fenced off
    2
    >>> bt.committed([0, 1])
    {0: 1, 1: None}
    """

    def __init__(self, table: DeltaTable, topic: str, lake: Lake):
        self._table = table
        self.topic = topic
        self.lake = lake
        self._unbound_source: str | None = None

    @classmethod
    def open(cls, lake: Lake, topic: str) -> BronzeTable:
        """Open ``bronze/<topic>`` of ``lake``, creating the empty table if needed."""
        table = lake.open_or_create(
            bronze_name(topic),
            BRONZE_SCHEMA,
            partition_by=PARTITION_BY,
            configuration=TABLE_CONFIGURATION,
            description=f"Every Kafka record of topic {topic}, exactly once",
        )
        return cls(table, topic, lake)

    @property
    def uri(self) -> str:
        """The table URI."""
        return self._table.table_uri

    @property
    def delta(self) -> DeltaTable:
        """The underlying :class:`deltalake.DeltaTable` (its snapshot may lag)."""
        return self._table

    def bind_source(self, source_id: str, partitions: Iterable[int]) -> None:
        """Tie this table to one incarnation of its topic (Kafka's topic id).

        Raises :class:`SourceChanged` if the table already holds offsets for any
        of ``partitions`` but ``source_id`` was never bound: the topic was
        recreated and its offsets mean other records. Otherwise the next
        :meth:`append` records the binding.
        """
        self._table.update_incremental()
        if self._table.transaction_version(source_app_id(self.topic, source_id)) is not None:
            self._unbound_source = None
            return
        committed = committed_offsets(self._table, self.topic, partitions)
        if any(c is not None for c in committed.values()):
            raise SourceChanged(self.uri, self.topic, source_id)
        self._unbound_source = source_id

    def committed(self, partitions: Sequence[int]) -> dict[int, int | None]:
        """Refresh and return the last committed offset per partition (None if none)."""
        self._table.update_incremental()
        return committed_offsets(self._table, self.topic, partitions)

    def append(
        self, rows: pa.Table, *, custom_metadata: Mapping[str, str] | None = None
    ) -> AppendResult:
        """Append ``rows`` (of :data:`BRONZE_SCHEMA`) exactly once per offset.

        Rows whose offset is at or below their partition's committed offset are
        dropped; the commit carries a ``txn`` action per partition with the last
        offset written. Retries when a concurrent writer touched the same
        partitions; raises :class:`OffsetConflict` if that never settles.
        """
        unbound = self._unbound_source
        result = fenced_append(
            self._table,
            rows,
            app_id=lambda p: txn_app_id(self.topic, p),
            partition="partition",
            offset="offset",
            partition_by=PARTITION_BY,
            extra_txns=(lambda: [Transaction(source_app_id(self.topic, unbound), 0)])
            if unbound is not None
            else None,
            storage_options=self.lake.storage_options,
            custom_metadata=custom_metadata,
            writer_properties=_WRITER,
            label=bronze_name(self.topic),
        )
        if result.version is not None:
            self._unbound_source = None
        return result
