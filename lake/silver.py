"""Silver tables: ``silver/<subject>``, one typed column per Avro field, plus lineage.

Lineage columns (:data:`SILVER_LINEAGE`, names from :mod:`lake.names`): the
record's Kafka topic, partition, offset and timestamp, its writer schema's id
and version, and the partition column (UTC day of the Kafka timestamp). The
column set is the merge of every version of the subject; a new version adds
columns (Delta schema evolution) without rewriting old files. Appends are
fenced per source topic-partition (:func:`lake.offsets.silver_app_id`).
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable, write_deltalake

from lake.catalog import Lake
from lake.fenced import AppendResult, fenced_append
from lake.names import (
    COORDINATES,
    DATE,
    KAFKA_OFFSET,
    KAFKA_PARTITION,
    KAFKA_TIMESTAMP,
    KAFKA_TOPIC,
    SCHEMA_ID,
    SCHEMA_VERSION,
    UTC_MICROS,
    SubjectStrategy,
    silver,
    topic_of_subject,
)
from lake.offsets import silver_app_id

__all__ = ["SILVER_LINEAGE", "SilverTable", "silver_topics", "silver_window", "subject_topics"]

SILVER_LINEAGE = pa.schema(
    [
        pa.field(KAFKA_TOPIC, pa.string(), nullable=False),
        pa.field(KAFKA_PARTITION, pa.int32(), nullable=False),
        pa.field(KAFKA_OFFSET, pa.int64(), nullable=False),
        pa.field(KAFKA_TIMESTAMP, UTC_MICROS),
        pa.field(SCHEMA_ID, pa.int32(), nullable=False),
        pa.field(SCHEMA_VERSION, pa.int32(), nullable=False),
        pa.field(DATE, pa.date32(), nullable=False),
    ]
)


class SilverTable:
    """``silver/<subject>`` of a lake; created by the first append."""

    def __init__(self, lake: Lake, subject: str):
        self.lake = lake
        self.subject = subject
        self.name = silver(subject)
        self.uri = lake.uri(self.name)
        self._table: DeltaTable | None = None

    def exists(self) -> bool:
        """True once the table has been created."""
        return self._table is not None or self.lake.exists(self.name)

    def open(self, schema: pa.Schema) -> DeltaTable:
        """The Delta table, created with ``schema`` on first use."""
        if self._table is None:
            self._table = self.lake.open_or_create(self.name, schema, partition_by=[DATE])
        return self._table

    def append(self, topic: str, rows: pa.Table) -> AppendResult:
        """Append decoded ``rows`` (data columns + :data:`SILVER_LINEAGE`) of ``topic``."""
        table = self.open(rows.schema)
        return fenced_append(
            table,
            rows,
            app_id=lambda p: silver_app_id(topic, p),
            partition=KAFKA_PARTITION,
            offset=KAFKA_OFFSET,
            partition_by=[DATE],
            schema_mode="merge",
            storage_options=self.lake.storage_options,
            label=self.name,
        )

    def append_missing(self, rows: pa.Table) -> int:
        """Append the ``rows`` whose (topic, partition, offset) the table lacks.

        For reprocessed dead letters, which are older than the offset fence:
        idempotent by an anti-join instead, so a retried reprocess adds nothing.
        """
        table = self.open(rows.schema)
        table.update_incremental()
        have = table.to_pyarrow_dataset().to_table(
            columns=list(COORDINATES),
            filter=pc.field(KAFKA_OFFSET).isin(rows.column(KAFKA_OFFSET)),
        )
        keys = set(zip(*(have.column(c).to_pylist() for c in COORDINATES), strict=True))
        mask = [
            k not in keys
            for k in zip(*(rows.column(c).to_pylist() for c in COORDINATES), strict=True)
        ]
        new = rows.filter(pa.array(mask, pa.bool_()))
        if new.num_rows:
            write_deltalake(
                table,
                new,
                mode="append",
                partition_by=[DATE],
                schema_mode="merge",
                storage_options=self.lake.storage_options,
            )
        return new.num_rows

    def read(self) -> pa.Table:
        """The whole table, by topic, partition, offset."""
        return (
            self.lake.table(self.name)
            .to_pyarrow_table()
            .sort_by([(c, "ascending") for c in COORDINATES])
        )


def silver_window(
    lake: Lake, subject: str, columns: list[str], start: dt.datetime, end: dt.datetime
) -> pa.Table:
    """``columns`` plus the record coordinates of ``silver/<subject>``'s rows whose Kafka
    timestamp lies in ``[start, end]`` (empty if the table does not exist yet)."""
    table = SilverTable(lake, subject)
    wanted = list(dict.fromkeys([*columns, *COORDINATES, KAFKA_TIMESTAMP]))
    if not table.exists():
        return pa.table({c: pa.array([], pa.null()) for c in wanted})
    ts = pc.field(KAFKA_TIMESTAMP)
    flt = (ts >= pa.scalar(start, UTC_MICROS)) & (ts <= pa.scalar(end, UTC_MICROS))
    dataset = lake.table(table.name).to_pyarrow_dataset()
    present = [c for c in wanted if c in dataset.schema.names]
    return dataset.to_table(columns=present, filter=flt)


def silver_topics(lake: Lake, subject: str) -> list[str]:
    """The topics whose records ``silver/<subject>`` holds, from the Delta log's file
    statistics (a file whose rows span several topics is read for that column only).

    >>> import tempfile
    >>> lake = Lake(tempfile.mkdtemp())
    >>> silver_topics(lake, "demo.Order")
    []
    """
    name = silver(subject)
    if not lake.exists(name):
        return []
    table = lake.table(name)
    adds = pa.table(table.get_add_actions(flatten=True)).to_pydict()
    lo, hi = adds.get(f"min.{KAFKA_TOPIC}", []), adds.get(f"max.{KAFKA_TOPIC}", [])
    topics = {a for a, b in zip(lo, hi, strict=True) if a is not None and a == b}
    if len(lo) == 0 or any(a is None or a != b for a, b in zip(lo, hi, strict=True)):
        column = table.to_pyarrow_dataset().to_table(columns=[KAFKA_TOPIC]).column(0)
        topics |= set(pc.unique(column).to_pylist())
    return sorted(topics)


def subject_topics(lake: Lake, subject: str, strategy: SubjectStrategy) -> list[str]:
    """The topics of ``subject``: named by the subject strategy where it says, else the
    topics its silver table holds (:func:`silver_topics`).

    >>> import tempfile
    >>> subject_topics(Lake(tempfile.mkdtemp()), "orders-value", "topic")
    ['orders']
    """
    derived = topic_of_subject(subject, strategy)
    return [derived] if derived is not None else silver_topics(lake, subject)
