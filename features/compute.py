"""Computing a feature set: the rows of events, and the batch path (by days).

One semantics, three paths (the incremental path is :mod:`features.incremental`,
the online one :mod:`features.online`; all call :func:`feature_rows`):

- row-local features are evaluated on the event itself;
- aggregations (:mod:`features.aggregations`) count the events of the same key
  strictly before the event's time, within the window if any.

The batch path (:func:`compute_features`) replaces the rows of a range of days
of ``features/<name>``, each computed over the source's whole history: the
backfill and the replay, idempotent, and the reference the other paths are
checked against.

Each row keeps its source's Kafka coordinates (:data:`lake.names.COORDINATES`)
and, once labeled, the label event's (:data:`lake.names.LABEL_COORDINATES`):
what the model registry's lineage and erasure read. ``_late`` marks a row the
incremental path computed for an event that arrived after its allowed
lateness (see :mod:`features.incremental`); the batch path never sets it.
"""

from __future__ import annotations

import datetime as dt
import logging

import polars as pl
from deltalake import write_deltalake

from features.aggregations import evaluate
from features.definition import FeatureSet, Label
from lake import Lake, TableNotInLake
from lake.names import COORDINATES, DATE, KAFKA_OFFSET, KAFKA_PARTITION, LABEL_COORDINATES
from lake.names import features as features_table

__all__ = [
    "EVENT_ORDER_TIEBREAK",
    "FEATURE_LINEAGE",
    "LATE",
    "batch_rows",
    "compute_features",
    "differences",
    "feature_frame",
    "feature_rows",
    "first_labels",
    "label_dtype",
    "no_label",
    "read_features",
    "source_events",
    "with_labels",
]

log = logging.getLogger(__name__)

# The lineage columns of a feature row: source and label coordinates, the date partition.
FEATURE_LINEAGE = [*COORDINATES, *LABEL_COORDINATES, DATE]
EVENT_ORDER_TIEBREAK = [KAFKA_PARTITION, KAFKA_OFFSET]  # after event time
LATE = "_late"  # the row's event arrived after the allowed lateness (incremental path)
_LABEL_TYPES = {
    LABEL_COORDINATES[0]: pl.String,
    LABEL_COORDINATES[1]: pl.Int32,
    LABEL_COORDINATES[2]: pl.Int64,
}


def source_events(lake: Lake, fs: FeatureSet, source: pl.LazyFrame | None = None) -> pl.LazyFrame:
    """The source's events with the columns the features read and their lineage; a
    field a later schema version adds is null until the first version with it lands."""
    src = lake.scan(fs.source) if source is None else source
    have = set(src.collect_schema().names())
    wanted = [*fs.inputs, *COORDINATES, DATE]
    missing = [c for c in dict.fromkeys(wanted) if c not in have]
    return src.with_columns(pl.lit(None).alias(c) for c in missing).select(
        list(dict.fromkeys(wanted))
    )


def no_label(dtype: pl.DataType | type[pl.DataType] = pl.Float64) -> list[pl.Expr]:
    """The label columns of a row whose label has not arrived: all null, the label
    typed ``dtype`` (see :func:`label_dtype`)."""
    return [pl.lit(None, dtype).alias("label")] + [
        pl.lit(None, dtype).alias(c) for c, dtype in _LABEL_TYPES.items()
    ]


def label_dtype(lake: Lake, fs: FeatureSet) -> pl.DataType:
    """The type of ``fs``'s label: its column's in silver, as the schema types it
    (a string, int or boolean class stays one); before that table exists, the
    feature table's, else Float64.

    >>> import tempfile
    >>> fs = FeatureSet("f", "silver.s", "k", "t", label=Label("silver.l", "k", "y"))
    >>> label_dtype(Lake(tempfile.mkdtemp()), fs)
    Float64
    """
    label = fs.label
    if label is None:
        return pl.Float64()
    table, column = (fs.source, label) if isinstance(label, str) else (label.table, label.column)
    for name, col in ((table, column), (features_table(fs.name), "label")):
        try:
            return lake.scan(name).collect_schema()[col]
        except (TableNotInLake, KeyError):
            continue
    return pl.Float64()


def feature_rows(
    fs: FeatureSet,
    queries: pl.LazyFrame,
    events: pl.LazyFrame,
    base: dict[str, pl.LazyFrame] | None = None,
    window_events: pl.LazyFrame | None = None,
    *,
    label_type: pl.DataType | type[pl.DataType] = pl.Float64,
) -> pl.LazyFrame:
    """Feature rows (key, event time, features, lineage) for the events ``queries``,
    aggregating ``events`` before each: unwindowed aggregations on top of ``base``
    (partials per key of the events older than ``events``), windowed ones over
    ``window_events`` (default ``events``), which must cover each window. Rows
    waiting for a later label event get a null label of ``label_type``."""
    t = fs.event_time
    out = queries.with_columns(expr.alias(name) for name, expr in fs.row_local.items())
    groups: dict[tuple[str, bool], dict] = {}
    for name, agg in fs.aggregations.items():
        groups.setdefault((agg.by, agg.window is None), {})[name] = agg
    for (by, unwindowed), aggs in groups.items():
        if unwindowed:
            out = evaluate(aggs, events, out, t, base=base.get(by) if base else None)
        else:
            out = evaluate(aggs, events if window_events is None else window_events, out, t)
    label: list[pl.Expr] = []
    if isinstance(fs.label, str):
        label = [pl.col(fs.label).alias("label")] + [
            pl.col(s).alias(d) for s, d in zip(COORDINATES, LABEL_COORDINATES, strict=True)
        ]
    else:
        label = no_label(label_type)
    return out.select(
        fs.key, t, *fs.feature_names, *label, *COORDINATES, DATE, pl.lit(False).alias(LATE)
    ).select(fs.key, t, *fs.feature_names, "label", *FEATURE_LINEAGE, LATE)


def first_labels(events: pl.LazyFrame, label: Label) -> pl.LazyFrame:
    """The first label event per key (lowest partition, then offset), with its lineage:
    columns ``_join_key``, ``label`` and the label coordinates."""
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


def _labels(lake: Lake, fs: FeatureSet) -> pl.LazyFrame:
    label = fs.label
    assert isinstance(label, Label)
    try:
        return first_labels(lake.scan(label.table), label)
    except TableNotInLake:  # no label has landed yet
        empty = pl.Schema({"_join_key": pl.Int64(), "label": label_dtype(lake, fs)})
        return pl.LazyFrame(schema={**empty, **_LABEL_TYPES})


def with_labels(rows: pl.LazyFrame, labels: pl.LazyFrame, fs: FeatureSet) -> pl.LazyFrame:
    """``rows`` with their label columns from ``labels`` (``first_labels`` shape)."""
    cols = ["label", *LABEL_COORDINATES]
    joined = rows.drop(cols).join(
        labels.with_columns(pl.col("_join_key").cast(rows.collect_schema()[fs.key])),
        left_on=fs.key,
        right_on="_join_key",
        how="left",
    )
    return joined.select(rows.collect_schema().names())


def feature_frame(lake: Lake, fs: FeatureSet, *, with_label: bool = True) -> pl.LazyFrame:
    """The feature set over the whole source (batch semantics): one row per event, in
    event-time order (ties by partition and offset)."""
    events = source_events(lake, fs)
    rows = feature_rows(fs, events, events, label_type=label_dtype(lake, fs))
    if with_label and isinstance(fs.label, Label):
        rows = with_labels(rows, _labels(lake, fs), fs)
    return rows.sort([fs.event_time, *EVENT_ORDER_TIEBREAK])


def batch_rows(lake: Lake, fs: FeatureSet, start: dt.date, end: dt.date) -> pl.DataFrame:
    """The feature rows of days ``start..end`` (inclusive) by the batch path."""
    events = source_events(lake, fs)
    queries = events.filter(pl.col(DATE).is_between(start, end))
    rows = feature_rows(fs, queries, events, label_type=label_dtype(lake, fs))
    if isinstance(fs.label, Label):
        rows = with_labels(rows, _labels(lake, fs), fs)
    return rows.collect()


def differences(lake: Lake, fs: FeatureSet, day: dt.date) -> list[dict]:
    """Rows of ``features/<name>`` on ``day`` whose features differ from the batch path's
    (or that it would not write); [] when the incremental rows are exact. Rows the
    incremental path has not emitted yet are not counted."""
    name = features_table(fs.name)
    if not lake.exists(name):
        return []
    stored = lake.scan(name).filter(pl.col(DATE) == day).select(
        *COORDINATES, *fs.feature_names
    ).collect()  # fmt: skip
    want = batch_rows(lake, fs, day, day).select(*COORDINATES, *fs.feature_names)
    extra = stored.join(want, on=list(COORDINATES), how="anti")
    both = stored.join(want, on=list(COORDINATES), how="inner", suffix="_batch")
    differ = pl.lit(False)
    for f in fs.feature_names:
        differ = differ | ~pl.col(f).eq_missing(pl.col(f"{f}_batch"))
    changed = both.filter(differ).select(*COORDINATES, *fs.feature_names)
    return pl.concat([extra, changed], how="diagonal_relaxed").to_dicts()


def compute_features(lake: Lake, fs: FeatureSet, start: dt.date, end: dt.date) -> int:
    """Write the feature rows of days ``start..end`` (inclusive); return how many.

    Replaces exactly those days' rows, so a backfill of a range is idempotent;
    rows the incremental path marked late get their exact values back.
    """
    table = batch_rows(lake, fs, start, end).to_arrow()
    name = features_table(fs.name)
    if lake.exists(name):
        write_deltalake(
            lake.table(name),
            table,
            mode="overwrite",
            predicate=f"{DATE} >= '{start}' AND {DATE} <= '{end}'",
            partition_by=[DATE],
            schema_mode="merge",
            storage_options=lake.storage_options,
        )
    elif table.num_rows:
        write_deltalake(
            lake.uri(name), table, partition_by=[DATE], storage_options=lake.storage_options
        )
    log.info("%s: %d rows for %s..%s", name, table.num_rows, start, end)
    return table.num_rows


def read_features(lake: Lake, fs: FeatureSet) -> pl.DataFrame:
    """The whole ``features/<name>`` table in event-time order."""
    return lake.scan(features_table(fs.name)).sort([fs.event_time, *EVENT_ORDER_TIEBREAK]).collect()
