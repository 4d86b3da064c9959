"""Computing a feature set into ``features/<name>``: by date range, or incrementally.

Both paths call :func:`feature_frame`, which evaluates the declaration over the
source's whole history in event-time order, and differ only in which rows they
write:

- :func:`compute_features` (batch) replaces the rows of a range of days,
  partitioned by the source's ``_date``;
- :func:`update_features` (incremental) upserts the rows added to the source
  since its cursor, plus older rows whose label has arrived since, and moves the
  cursors in the same commit (Delta ``txn`` actions, as ingest does), so a
  retried update writes the same rows again, never different ones.

Each row keeps its source's Kafka coordinates (:data:`lake.names.COORDINATES`)
and, once labeled, the label event's (:data:`lake.names.LABEL_COORDINATES`):
what the model registry's lineage and erasure read. Evaluating over the whole
history keeps the two paths identical by construction; its cost grows with the
source, which is fine for tables that fit a machine and the first thing to bound
with a lookback window when not.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import polars as pl
from deltalake import CommitProperties, Transaction, write_deltalake

from features.definition import FeatureSet, Label
from lake import Lake, TableNotInLake
from lake.names import COORDINATES, DATE, KAFKA_OFFSET, KAFKA_PARTITION, LABEL_COORDINATES
from lake.names import features as features_table

__all__ = [
    "EVENT_ORDER_TIEBREAK",
    "FEATURE_LINEAGE",
    "FeatureUpdate",
    "compute_features",
    "feature_frame",
    "features_app_id",
    "read_features",
    "update_features",
]

log = logging.getLogger(__name__)

# The lineage columns of a feature row: source and label coordinates, the date partition.
FEATURE_LINEAGE = [*COORDINATES, *LABEL_COORDINATES, DATE]
EVENT_ORDER_TIEBREAK = [KAFKA_PARTITION, KAFKA_OFFSET]  # after event time


def features_app_id(name: str, role: str, topic: str, partition: int) -> str:
    """The ``txn`` app id of a feature set's cursor on ``topic[partition]``.

    ``role`` is ``source`` or ``label``.

    >>> features_app_id("order_eta", "label", "order_delivered", 0)
    'eventlake-features:order_eta:label:order_delivered:0'
    """
    return f"eventlake-features:{name}:{role}:{topic}:{partition}"


@dataclass(frozen=True)
class FeatureUpdate:
    """What one incremental update wrote."""

    new_rows: int  # source rows seen for the first time
    relabeled: int  # earlier rows whose label arrived
    version: int | None  # Delta version written, None if nothing to do


def feature_frame(
    lake: Lake,
    fs: FeatureSet,
    source: pl.LazyFrame | None = None,
    *,
    with_label: bool = True,
) -> pl.LazyFrame:
    """The feature set over the whole source: key, event time, features, label, lineage.

    Rows are in event-time order (ties by partition and offset). ``source``
    replaces the source table (the scorer passes history plus the events it
    has just decoded); without ``with_label`` the label columns are null.
    """
    src = lake.scan(fs.source) if source is None else source
    # A field a later schema version adds is null until the first version with it lands.
    have = set(src.collect_schema().names())
    wanted = {n for e in fs.features.values() for n in e.meta.root_names()}
    src = src.with_columns(pl.lit(None).alias(n) for n in sorted(wanted - have))
    src = src.sort([fs.event_time, *EVENT_ORDER_TIEBREAK])
    label_cols: list[pl.Expr] = []
    label = fs.label if with_label else None
    if isinstance(label, str):
        label_cols = [pl.col(label).alias("label")] + [
            pl.col(s).alias(d) for s, d in zip(COORDINATES, LABEL_COORDINATES, strict=True)
        ]
    frame = src.select(
        pl.col(fs.key),
        pl.col(fs.event_time),
        *[expr.alias(name) for name, expr in fs.features.items()],
        *label_cols,
        *[pl.col(c) for c in COORDINATES],
        pl.col(DATE),
    )
    if isinstance(label, Label):
        frame = frame.join(_labels(lake, label), left_on=fs.key, right_on="_join_key", how="left")
    elif label is None:
        frame = frame.with_columns(
            pl.lit(None, pl.Float64).alias("label"),
            pl.lit(None, pl.String).alias(LABEL_COORDINATES[0]),
            pl.lit(None, pl.Int32).alias(LABEL_COORDINATES[1]),
            pl.lit(None, pl.Int64).alias(LABEL_COORDINATES[2]),
        )
    return frame.select(fs.key, fs.event_time, *fs.feature_names, "label", *FEATURE_LINEAGE)


def _labels(lake: Lake, label: Label) -> pl.LazyFrame:
    """The first label event per key, with its lineage."""
    try:
        events = lake.scan(label.table)
    except TableNotInLake:  # no label has landed yet
        return pl.LazyFrame(
            schema={
                "_join_key": pl.Int64,
                "label": pl.Float64,
                LABEL_COORDINATES[0]: pl.String,
                LABEL_COORDINATES[1]: pl.Int32,
                LABEL_COORDINATES[2]: pl.Int64,
            }
        )
    return (
        events.sort(EVENT_ORDER_TIEBREAK)
        .group_by(label.key, maintain_order=True)
        .first()
        .select(
            pl.col(label.key).alias("_join_key"),
            pl.col(label.column).alias("label"),
            *[pl.col(s).alias(d) for s, d in zip(COORDINATES, LABEL_COORDINATES, strict=True)],
        )
    )


def compute_features(lake: Lake, fs: FeatureSet, start: dt.date, end: dt.date) -> int:
    """Write the feature rows of days ``start..end`` (inclusive); return how many.

    Replaces exactly those days' rows, so a backfill of a range is idempotent.
    """
    rows = feature_frame(lake, fs).filter(pl.col(DATE).is_between(start, end)).collect().to_arrow()
    name = features_table(fs.name)
    if lake.exists(name):
        write_deltalake(
            lake.table(name),
            rows,
            mode="overwrite",
            predicate=f"{DATE} >= '{start}' AND {DATE} <= '{end}'",
            partition_by=[DATE],
            storage_options=lake.storage_options,
        )
    elif rows.num_rows:
        write_deltalake(
            lake.uri(name), rows, partition_by=[DATE], storage_options=lake.storage_options
        )
    log.info("%s: %d rows for %s..%s", name, rows.num_rows, start, end)
    return rows.num_rows


def update_features(lake: Lake, fs: FeatureSet) -> FeatureUpdate:
    """Upsert the rows added since the cursors, and rows whose label just arrived."""
    name = features_table(fs.name)
    table = lake.table(name) if lake.exists(name) else None
    full = feature_frame(lake, fs).collect()

    def cursor(role: str, topic: str, partition: int) -> int:
        if table is None:
            return -1
        v = table.transaction_version(features_app_id(fs.name, role, topic, partition))
        return -1 if v is None else v

    src_max = _max_offsets(full, COORDINATES)
    label_max = _max_offsets(full.filter(pl.col("label").is_not_null()), LABEL_COORDINATES)
    src_cur = {k: cursor("source", *k) for k in src_max}
    label_cur = {k: cursor("label", *k) for k in label_max}
    is_new = _after(COORDINATES, src_cur)
    relabel = pl.col("label").is_not_null() & _after(LABEL_COORDINATES, label_cur) & ~is_new
    new = full.filter(is_new)
    relabeled = full.filter(relabel)
    rows = pl.concat([new, relabeled]).to_arrow()
    txns = [
        Transaction(features_app_id(fs.name, "source", t, p), o) for (t, p), o in src_max.items()
    ]
    txns += [
        Transaction(features_app_id(fs.name, "label", t, p), o) for (t, p), o in label_max.items()
    ]
    moved = any(src_cur[k] != o for k, o in src_max.items()) or any(
        label_cur[k] != o for k, o in label_max.items()
    )
    if rows.num_rows == 0 and not moved:
        return FeatureUpdate(0, 0, None)
    props = CommitProperties(app_transactions=txns)
    if table is None:
        write_deltalake(
            lake.uri(name),
            rows,
            partition_by=[DATE],
            storage_options=lake.storage_options,
            commit_properties=props,
        )
        version = lake.table(name).version()
    else:
        on = " AND ".join(f"t.{c} = s.{c}" for c in COORDINATES)
        table.merge(
            rows, on, source_alias="s", target_alias="t", commit_properties=props
        ).when_matched_update_all().when_not_matched_insert_all().execute()
        version = table.version()
    log.info(
        "%s: %d new rows, %d relabeled (version %s)",
        name,
        new.height,
        relabeled.height,
        version,
    )
    return FeatureUpdate(new.height, relabeled.height, version)


def read_features(lake: Lake, fs: FeatureSet) -> pl.DataFrame:
    """The whole ``features/<name>`` table in event-time order."""
    return lake.scan(features_table(fs.name)).sort([fs.event_time, *EVENT_ORDER_TIEBREAK]).collect()


def _max_offsets(frame: pl.DataFrame, lineage: tuple[str, str, str]) -> dict[tuple[str, int], int]:
    topic, part, off = lineage
    agg = frame.group_by(topic, part).agg(pl.col(off).max())
    return {(t, int(p)): int(o) for t, p, o in agg.iter_rows()}


def _after(lineage: tuple[str, str, str], cursors: dict[tuple[str, int], int]) -> pl.Expr:
    """Rows whose (topic, partition, offset) in ``lineage`` is past its cursor."""
    topic, part, off = lineage
    expr = pl.lit(False)
    for (t, p), c in cursors.items():
        expr = expr | ((pl.col(topic) == t) & (pl.col(part) == p) & (pl.col(off) > c))
    return expr
