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
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable, write_deltalake

from ingest.decoder import Decoder
from ingest.errors import ReplayError
from ingest.expectations import Expectations
from ingest.schema_resolver import SchemaResolver
from lake import DeadLetters, Lake, SilverTable, decode_cursor
from lake.names import (
    COORDINATES,
    DATE,
    DEAD_LETTERS,
    KAFKA_OFFSET,
    KAFKA_PARTITION,
    SubjectStrategy,
    layer_of,
)
from lake.names import bronze as bronze_name

__all__ = ["RebuildSummary", "existing_bronze", "rebuild_silver"]

log = logging.getLogger(__name__)

_SILVER_ORDER = [(KAFKA_PARTITION, "ascending"), (KAFKA_OFFSET, "ascending")]
_DEAD_ORDER = [("partition", "ascending"), ("offset", "ascending")]


def existing_bronze(lake: Lake, topic: str) -> DeltaTable:
    """``bronze/<topic>``, which a replay reads; :class:`ReplayError` if there is none."""
    if not lake.exists(bronze_name(topic)):
        raise ReplayError(
            f"no bronze table for topic {topic!r} under {lake.root}; "
            "`eventlake tables` lists what the lake holds"
        )
    return lake.table(bronze_name(topic))


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
    lake: Lake,
    topic: str,
    resolver: SchemaResolver,
    *,
    start: dt.date | None = None,
    end: dt.date | None = None,
    reader_version: int | None = None,
    subject_strategy: SubjectStrategy = "topic",
    subjects: Collection[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    expectations: Expectations | None = None,
) -> RebuildSummary:
    """Rebuild ``topic``'s silver rows and dead letters for days ``start..end``
    (inclusive; None: unbounded) from bronze.

    With ``reader_version``, records are decoded into that version of the
    subject's schema (Avro resolution) instead of their writer's. ``subjects``
    limits the silver tables replaced (default: every subject of the topic).
    ``progress`` is called with (records done, records in all) after each day.
    ``expectations`` judge the records as ingest does (failing ones become dead
    letters); the ``quality`` table records live ingest only.

    >>> import tempfile
    >>> from lake import SchemaStore
    >>> lake = Lake(tempfile.mkdtemp())
    >>> rebuild_silver(lake, "orders", SchemaResolver(SchemaStore.open(lake)))
    Traceback (most recent call last):
    ...
    ingest.errors.ReplayError: no bronze table for topic 'orders' under ...
    """
    t0 = time.monotonic()
    bronze = existing_bronze(lake, topic)
    decoder = Decoder(
        topic,
        resolver,
        subject_strategy=subject_strategy,
        reader_version=reader_version,
        expectations=expectations,
    )
    days = sorted(
        d
        for d in (dt.date.fromisoformat(p["date"]) for p in bronze.partitions())
        if (start is None or d >= start) and (end is None or d <= end)
    )
    dataset = bronze.to_pyarrow_dataset()
    partitions = pc.unique(dataset.to_table(columns=["partition"]).column("partition")).to_pylist()
    cursor = {p: c for p, c in decode_cursor(lake, topic, partitions).items() if c is not None}
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
    dead_letters = DeadLetters.open(lake)
    # Listed once: the silver tables this topic may have rows in.
    silver_names = {rest for layer, rest in map(layer_of, lake.names()) if layer == "silver"}
    for day in days:
        rows = dataset.to_table(filter=(pc.field("date") == day) & decoded).sort_by(_DEAD_ORDER)
        out = decoder.decode(rows)
        silver_names |= set(out.silver)
        for subject in sorted(silver_names):
            if subjects is not None and subject not in subjects:
                continue
            new = out.silver.get(subject)
            silver = SilverTable(lake, subject)
            if new is None and not silver.exists():
                continue
            table = silver.open(new.schema if new is not None else pa.schema([]))
            if _replace(table, _Scope(day, topic, cursor, SILVER_COLUMNS), new, _SILVER_ORDER):
                summary.rewritten[silver.name] = summary.rewritten.get(silver.name, 0) + 1
            if new is not None:
                summary.silver_rows[subject] = summary.silver_rows.get(subject, 0) + new.num_rows
        dead = out.dead
        scope = _Scope(day, topic, cursor, DEAD_LETTER_COLUMNS)
        if _replace(dead_letters.delta, scope, dead, _DEAD_ORDER, keep="quarantined_at"):
            summary.rewritten[DEAD_LETTERS] = summary.rewritten.get(DEAD_LETTERS, 0) + 1
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

    ``columns`` name the table's (topic, partition, offset, date) columns: silver's
    lineage (:data:`SILVER_COLUMNS`) or the bronze columns dead letters keep.
    """

    day: dt.date
    topic: str
    cursor: dict[int, int]
    columns: tuple[str, str, str, str]

    def sql(self) -> str:
        topic, part, off, date = self.columns
        parts = " OR ".join(f'("{part}" = {p} AND "{off}" <= {c})' for p, c in self.cursor.items())
        return f"\"{date}\" = '{self.day}' AND \"{topic}\" = '{self.topic}' AND ({parts})"

    def expr(self) -> pc.Expression:
        topic, part, off, date = self.columns
        parts = [(pc.field(part) == p) & (pc.field(off) <= c) for p, c in self.cursor.items()]
        return (
            (pc.field(date) == self.day)
            & (pc.field(topic) == self.topic)
            & functools.reduce(operator.or_, parts)
        )


SILVER_COLUMNS = (*COORDINATES, DATE)
DEAD_LETTER_COLUMNS = ("topic", "partition", "offset", "date")


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
