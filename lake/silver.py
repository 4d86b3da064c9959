"""Silver tables: ``silver/<subject>``, one typed column per Avro field, plus lineage.

Lineage columns: ``_kafka_topic``, ``_kafka_partition``, ``_kafka_offset``,
``_kafka_timestamp``, ``_schema_id``, ``_schema_version``; partition column
``_date`` (UTC day of the Kafka timestamp). The column set is the merge of
every version of the subject; a new version adds columns (Delta schema
evolution) without rewriting old files. Appends are fenced per source
topic-partition (:func:`lake.offsets.silver_app_id`).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable, write_deltalake

from lake.bronze import UTC_MICROS
from lake.fenced import AppendResult, fenced_append
from lake.names import table_uri, validate_name
from lake.offsets import silver_app_id
from lake.tables import open_or_create

__all__ = ["LINEAGE", "SilverTable"]

LINEAGE = pa.schema(
    [
        pa.field("_kafka_topic", pa.string(), nullable=False),
        pa.field("_kafka_partition", pa.int32(), nullable=False),
        pa.field("_kafka_offset", pa.int64(), nullable=False),
        pa.field("_kafka_timestamp", UTC_MICROS),
        pa.field("_schema_id", pa.int32(), nullable=False),
        pa.field("_schema_version", pa.int32(), nullable=False),
        pa.field("_date", pa.date32(), nullable=False),
    ]
)


class SilverTable:
    """``silver/<subject>`` under a lake root; created by the first append."""

    def __init__(self, root: str, subject: str, storage_options: dict[str, str] | None = None):
        self.subject = validate_name(subject)
        self.uri = table_uri(root, "silver", subject)
        self._storage_options = storage_options
        self._table: DeltaTable | None = None

    def open(self, schema: pa.Schema) -> DeltaTable:
        """The Delta table, created with ``schema`` on first use."""
        if self._table is None:
            self._table = open_or_create(
                self.uri,
                schema,
                partition_by=["_date"],
                name=f"silver_{self.subject}",
                storage_options=self._storage_options,
            )
        return self._table

    def append(self, topic: str, rows: pa.Table) -> AppendResult:
        """Append decoded ``rows`` (data columns + :data:`LINEAGE`) of ``topic``."""
        table = self.open(rows.schema)
        return fenced_append(
            table,
            rows,
            app_id=lambda p: silver_app_id(topic, p),
            partition="_kafka_partition",
            offset="_kafka_offset",
            partition_by=["_date"],
            schema_mode="merge",
            storage_options=self._storage_options,
            label=f"silver/{self.subject}",
        )

    def append_missing(self, rows: pa.Table) -> int:
        """Append the ``rows`` whose (topic, partition, offset) the table lacks.

        For reprocessed dead letters, which are older than the offset fence:
        idempotent by an anti-join instead, so a retried reprocess adds nothing.
        """
        table = self.open(rows.schema)
        table.update_incremental()
        have = table.to_pyarrow_dataset().to_table(
            columns=["_kafka_topic", "_kafka_partition", "_kafka_offset"],
            filter=pc.field("_kafka_offset").isin(rows.column("_kafka_offset")),
        )
        keys = set(
            zip(
                have.column(0).to_pylist(),
                have.column(1).to_pylist(),
                have.column(2).to_pylist(),
                strict=True,
            )
        )
        mask = [
            k not in keys
            for k in zip(
                rows.column("_kafka_topic").to_pylist(),
                rows.column("_kafka_partition").to_pylist(),
                rows.column("_kafka_offset").to_pylist(),
                strict=True,
            )
        ]
        new = rows.filter(pa.array(mask, pa.bool_()))
        if new.num_rows:
            write_deltalake(
                table,
                new,
                mode="append",
                partition_by=["_date"],
                schema_mode="merge",
                storage_options=self._storage_options,
            )
        return new.num_rows

    def read(self) -> pa.Table:
        """The whole table, by topic, partition, offset."""
        table = DeltaTable(self.uri, storage_options=self._storage_options)
        return table.to_pyarrow_table().sort_by(
            [
                ("_kafka_topic", "ascending"),
                ("_kafka_partition", "ascending"),
                ("_kafka_offset", "ascending"),
            ]
        )
