"""Rebuilding silver from bronze: what a decoder fix or a reader-schema change needs.

Bronze is the source of truth; silver and dead letters are a function of it.
:func:`rebuild_silver` decodes one topic's bronze records again, day by day,
and replaces that topic's rows of those days in every silver table and in
``dead_letters``, with one overwrite-by-predicate commit per table and day. A
day whose result equals what is there is left alone, so a second run changes
nothing, and days outside the range are never touched.

Only offsets up to the decode cursor are rebuilt: the records after it belong
to the streaming path (``eventlake ingest --decode`` decodes them from the
cursor), so a rebuild can run next to a live ingest. Interrupted, it is simply
run again.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import operator
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import TableNotFoundError

from ingest.errors import ReplayError
from ingest.schema_resolver import SchemaResolver
from ingest.silver_writer import SilverWriter, SubjectStrategy
from lake import table_uri
from lake.catalog import Lake
from lake.silver import SilverTable

__all__ = ["RebuildSummary", "existing_bronze", "rebuild_silver"]

log = logging.getLogger(__name__)

_SILVER_ORDER = [("_kafka_partition", "ascending"), ("_kafka_offset", "ascending")]
_DEAD_ORDER = [("partition", "ascending"), ("offset", "ascending")]


def existing_bronze(
    lake_root: str, topic: str, storage_options: dict[str, str] | None
) -> DeltaTable:
    """``bronze/<topic>``, which a replay reads; :class:`ReplayError` if there is none."""
    try:
        return DeltaTable(table_uri(lake_root, "bronze", topic), storage_options=storage_options)
    except TableNotFoundError:
        raise ReplayError(
            f"no bronze table for topic {topic!r} under {lake_root}; "
            "`eventlake tables` lists what the lake holds"
        ) from None


@dataclass
class RebuildSummary:
    """What one rebuild did."""

    records: int = 0  # bronze records decoded again
    days: int = 0
    rewritten: dict[str, int] = field(default_factory=dict)  # table -> days replaced
    silver_rows: dict[str, int] = field(default_factory=dict)
    dead_letters: int = 0
    seconds: float = 0.0

    def __str__(self) -> str:
        changed = ", ".join(f"{t} ({n} days)" for t, n in sorted(self.rewritten.items()))
        return (
            f"{self.records:,} records over {self.days} days decoded again in "
            f"{self.seconds:.1f} s; rewritten: {changed or 'nothing (already equal)'}"
        )


def rebuild_silver(
    lake_root: str,
    topic: str,
    resolver: SchemaResolver,
    *,
    start: dt.date | None = None,
    end: dt.date | None = None,
    reader_version: int | None = None,
    subject_strategy: SubjectStrategy = "topic",
    storage_options: dict[str, str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> RebuildSummary:
    """Rebuild ``topic``'s silver rows and dead letters for days ``start..end``
    (inclusive; None: unbounded) from bronze.

    With ``reader_version``, records are decoded into that version of the
    subject's schema (Avro resolution) instead of their writer's. ``progress``
    is called with (records done, records in all) after each day.

    >>> import tempfile
    >>> from lake import SchemaRegistry
    >>> root = tempfile.mkdtemp()
    >>> rebuild_silver(root, "orders", SchemaResolver(SchemaRegistry.open(root)))
    Traceback (most recent call last):
    ...
    ingest.errors.ReplayError: no bronze table for topic 'orders' under ...
    """
    t0 = time.monotonic()
    bronze = existing_bronze(lake_root, topic, storage_options)
    writer = SilverWriter(
        lake_root,
        topic,
        resolver,
        subject_strategy=subject_strategy,
        storage_options=storage_options,
        reader_version=reader_version,
    )
    days = sorted(
        d
        for d in (dt.date.fromisoformat(p["date"]) for p in bronze.partitions())
        if (start is None or d >= start) and (end is None or d <= end)
    )
    dataset = bronze.to_pyarrow_dataset()
    partitions = pc.unique(dataset.to_table(columns=["partition"]).column("partition")).to_pylist()
    cursor = {
        p: c for p, c in writer.dead_letters.decoded(topic, partitions).items() if c is not None
    }
    if not cursor:
        raise ReplayError(
            f"nothing of {topic!r} has been decoded yet (no decode cursor); decode it "
            f"first with `eventlake ingest --topic {topic} --decode --until-caught-up`"
        )
    decoded = functools.reduce(
        operator.or_,
        [(pc.field("partition") == p) & (pc.field("offset") <= c) for p, c in cursor.items()],
    )
    in_range = pc.field("date").isin(pa.array(days, pa.date32())) & decoded
    total = dataset.count_rows(filter=in_range)
    summary = RebuildSummary(days=len(days))
    names = Lake(lake_root, storage_options=storage_options).names()  # listed once
    silver_names = {n[7:] for n in names if n.startswith("silver.")}
    for day in days:
        rows = dataset.to_table(filter=(pc.field("date") == day) & decoded).sort_by(_DEAD_ORDER)
        tables, dead = writer.decode(rows)
        silver_names |= set(tables)
        for subject in sorted(silver_names):
            new = tables.get(subject)
            silver = SilverTable(lake_root, subject, storage_options)
            if new is None and not DeltaTable.is_deltatable(silver.uri, storage_options):
                continue
            table = silver.open(new.schema if new is not None else pa.schema([]))
            if _replace(table, _Scope(day, topic, cursor, "_kafka_"), new, _SILVER_ORDER):
                name = f"silver/{subject}"
                summary.rewritten[name] = summary.rewritten.get(name, 0) + 1
            if new is not None:
                summary.silver_rows[subject] = summary.silver_rows.get(subject, 0) + new.num_rows
        scope = _Scope(day, topic, cursor, "")
        if _replace(writer.dead_letters.delta, scope, dead, _DEAD_ORDER, keep="quarantined_at"):
            summary.rewritten["dead_letters"] = summary.rewritten.get("dead_letters", 0) + 1
        summary.dead_letters += dead.num_rows
        summary.records += rows.num_rows
        if progress is not None:
            progress(summary.records, total)
    summary.seconds = time.monotonic() - t0
    log.info("rebuilt silver of %s: %s", topic, summary)
    return summary


@dataclass(frozen=True)
class _Scope:
    """One topic's rows of one day up to the decode cursor: what a rebuild replaces.

    ``prefix`` is ``_kafka_`` for silver's lineage columns, empty for dead letters.
    """

    day: dt.date
    topic: str
    cursor: dict[int, int]
    prefix: str

    def sql(self) -> str:
        pre = self.prefix
        parts = " OR ".join(
            f'("{pre}partition" = {p} AND "{pre}offset" <= {c})' for p, c in self.cursor.items()
        )
        date = "_date" if pre else "date"
        return f"\"{date}\" = '{self.day}' AND \"{pre}topic\" = '{self.topic}' AND ({parts})"

    def expr(self) -> pc.Expression:
        pre = self.prefix
        parts = [
            (pc.field(f"{pre}partition") == p) & (pc.field(f"{pre}offset") <= c)
            for p, c in self.cursor.items()
        ]
        date = "_date" if pre else "date"
        return (
            (pc.field(date) == self.day)
            & (pc.field(f"{pre}topic") == self.topic)
            & functools.reduce(operator.or_, parts)
        )


def _replace(
    table: DeltaTable,
    scope: _Scope,
    new: pa.Table | None,
    order: list[tuple[str, str]],
    *,
    keep: str | None = None,
) -> bool:
    """Make the rows of ``table`` in ``scope`` equal ``new``; False if they already were.

    ``keep`` names a column whose values stay those of the rows already there
    (when a dead letter was quarantined, say).
    """
    table.update_incremental()
    schema = pa.schema(table.schema().to_arrow())
    old = table.to_pyarrow_dataset().to_table(filter=scope.expr()).sort_by(order)
    merged = pa.unify_schemas([schema, new.schema]) if new is not None else schema
    new = _conform(new if new is not None else merged.empty_table(), merged).sort_by(order)
    if keep is not None and old.num_rows and new.num_rows:
        new = _keep_column(new, old, keep)
    if old.num_rows == new.num_rows and _conform(old, merged).equals(new):
        return False
    write_deltalake(
        table,
        new,
        mode="overwrite",
        predicate=scope.sql(),
        schema_mode="merge" if merged != schema else None,
    )
    return True


def _conform(rows: pa.Table, schema: pa.Schema) -> pa.Table:
    """``rows`` with ``schema``'s columns in its order; absent columns are null."""
    cols = [
        rows.column(f.name).cast(f.type)
        if f.name in rows.column_names
        else pa.nulls(len(rows), f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(cols, schema=schema)


def _keep_column(new: pa.Table, old: pa.Table, column: str) -> pa.Table:
    """``new`` with ``column`` taken from ``old`` where (partition, offset) match."""
    key = ["partition", "offset"]
    joined = (
        new.select(key)
        .join(
            old.select([*key, column]).rename_columns([*key, "_old"]), key, join_type="left outer"
        )
        .sort_by(_DEAD_ORDER)
    )
    values = pc.coalesce(joined.column("_old"), new.column(column))
    return new.set_column(new.schema.get_field_index(column), new.schema.field(column), values)
