"""Aggregations by an entity key over the events strictly before a row: the vocabulary.

Semantics, the same in every path (batch, incremental, online):

- An event ``e`` counts for a row ``r`` of the same key when ``e``'s event time
  is strictly earlier than ``r``'s (``t_e < t_r``): events at the same instant
  never see each other, whatever order they arrived in.
- With a ``window`` ``w``, only events with ``t_r - w <= t_e < t_r`` count: an
  exact sliding window over event time, not aligned to tiles.
- ``count`` counts events (0 when none); ``sum`` sums the non-null values (0.0
  when none); ``mean``, ``min``, ``max`` are over the non-null values (null when
  none); ``last`` is the value of the latest earlier event (latest event time,
  then highest Kafka partition and offset), null when none; ``distinct`` counts
  the distinct non-null values (0 when none). Rows whose key is null get nulls.

Declare them in a :class:`features.FeatureSet` beside row-local Polars
expressions::

    features={"distance_km": pl.col("distance_km"),
              "user_orders_before": prior_count("user_id"),
              "kitchen_load_30m": prior_count("restaurant_id", window=dt.timedelta(minutes=30))}

:func:`evaluate` computes them for a frame of query rows from a frame of
events, optionally on top of per-key partial aggregates of older events
(:class:`Partial`), which is how the incremental and online paths carry state.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal, get_args

import polars as pl

from lake.names import KAFKA_OFFSET, KAFKA_PARTITION

__all__ = [
    "Aggregation",
    "Kind",
    "evaluate",
    "partial_columns",
    "prior_count",
    "prior_distinct",
    "prior_last",
    "prior_max",
    "prior_mean",
    "prior_min",
    "prior_sum",
]

Kind = Literal["count", "sum", "mean", "min", "max", "last", "distinct"]
KINDS: tuple[str, ...] = get_args(Kind)
TIEBREAK = [KAFKA_PARTITION, KAFKA_OFFSET]  # among events at one instant: the latest last


@dataclass(frozen=True)
class Aggregation:
    """``kind`` of ``column`` over the earlier events with the same ``by`` (within
    ``window`` before the row if given)."""

    kind: Kind
    by: str
    column: str | None = None
    window: dt.timedelta | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown aggregation {self.kind!r}; valid: {', '.join(KINDS)}")
        if (self.column is None) != (self.kind == "count"):
            raise ValueError(f"{self.kind} takes a column" if self.column is None else
                             "count takes no column")  # fmt: skip
        if self.window is not None and self.window <= dt.timedelta(0):
            raise ValueError(f"window must be positive, got {self.window}")

    @property
    def inputs(self) -> list[str]:
        """The source columns it reads."""
        return [self.by] + ([self.column] if self.column else [])


def prior_count(by: str, *, window: dt.timedelta | None = None) -> Aggregation:
    """How many earlier events have the same ``by`` (0 for the first).

    >>> prior_count("user_id", window=dt.timedelta(minutes=30)).window
    datetime.timedelta(seconds=1800)
    """
    return Aggregation("count", by, None, window)


def prior_sum(column: str, by: str, *, window: dt.timedelta | None = None) -> Aggregation:
    """Sum of ``column`` over earlier events with the same ``by`` (0.0 when none)."""
    return Aggregation("sum", by, column, window)


def prior_mean(column: str, by: str, *, window: dt.timedelta | None = None) -> Aggregation:
    """Mean of ``column`` over earlier events with the same ``by`` (null when none)."""
    return Aggregation("mean", by, column, window)


def prior_min(column: str, by: str, *, window: dt.timedelta | None = None) -> Aggregation:
    """Smallest ``column`` of earlier events with the same ``by`` (null when none)."""
    return Aggregation("min", by, column, window)


def prior_max(column: str, by: str, *, window: dt.timedelta | None = None) -> Aggregation:
    """Largest ``column`` of earlier events with the same ``by`` (null when none)."""
    return Aggregation("max", by, column, window)


def prior_last(column: str, by: str, *, window: dt.timedelta | None = None) -> Aggregation:
    """``column`` of the latest earlier event with the same ``by`` (null when none)."""
    return Aggregation("last", by, column, window)


def prior_distinct(column: str, by: str, *, window: dt.timedelta | None = None) -> Aggregation:
    """How many distinct values of ``column`` earlier events with the same ``by`` had."""
    return Aggregation("distinct", by, column, window)


def partial_columns(name: str, agg: Aggregation) -> list[str]:
    """The columns of the per-key partial aggregate of feature ``name`` (unwindowed).

    >>> partial_columns("m", prior_mean("x", "u"))
    ['m__n', 'm__sum']
    """
    return {
        "count": [f"{name}__n"],
        "sum": [f"{name}__sum"],
        "mean": [f"{name}__n", f"{name}__sum"],
        "min": [f"{name}__min"],
        "max": [f"{name}__max"],
        "last": [f"{name}__last", f"{name}__has"],
        "distinct": [f"{name}__set"],
    }[agg.kind]


def _finish(name: str, agg: Aggregation) -> pl.Expr:
    """The feature value from its partial columns."""
    if agg.kind == "count":
        return pl.col(f"{name}__n").fill_null(0).cast(pl.Int64)
    if agg.kind == "sum":
        return pl.col(f"{name}__sum").fill_null(0.0).cast(pl.Float64)
    if agg.kind == "mean":
        n = pl.col(f"{name}__n").fill_null(0)
        return pl.when(n > 0).then(pl.col(f"{name}__sum") / n).otherwise(None).cast(pl.Float64)
    if agg.kind in ("min", "max"):
        return pl.col(f"{name}__{agg.kind}")
    if agg.kind == "last":
        return pl.col(f"{name}__last")
    return pl.col(f"{name}__distinct").fill_null(0).cast(pl.Int64)


def partials(
    aggs: dict[str, Aggregation], events: pl.LazyFrame, t: str, base: pl.LazyFrame | None = None
) -> pl.LazyFrame:
    """Per key of ``by``: the partial aggregates of the unwindowed ``aggs`` (all with
    that ``by``) over ``events``, folded into ``base`` (the same over older events).

    >>> ev = pl.LazyFrame({"u": [1, 1], "t": [1, 2], "x": [2.0, None],
    ...                    "_kafka_partition": [0, 0], "_kafka_offset": [0, 1]})
    >>> partials({"m": prior_mean("x", "u")}, ev, "t").collect().to_dicts()
    [{'u': 1, 'm__n': 1, 'm__sum': 2.0}]
    """
    bys = {a.by for a in aggs.values()}
    if len(bys) != 1 or any(a.window is not None for a in aggs.values()):
        raise ValueError("partials are kept per key, for unwindowed aggregations of one key")
    (k,) = bys
    exprs = [e for name, agg in aggs.items() for e in _partial_exprs(name, agg)]
    out = events.drop_nulls(k).sort([t, *TIEBREAK]).group_by(k, maintain_order=True).agg(exprs)
    if base is None:
        return out
    cols = [c for name, agg in aggs.items() for c in partial_columns(name, agg)]
    renamed = base.select(k, *[pl.col(c).alias(f"{c}_base") for c in cols])
    merged = out.join(renamed, on=k, how="full", coalesce=True)
    combine = [e for name, agg in aggs.items() for e in _combine(name, agg)]
    return merged.with_columns(combine).select(k, *cols)


def _partial_exprs(name: str, agg: Aggregation) -> list[pl.Expr]:
    """The partial aggregate of ``agg`` over a group of events (columns
    :func:`partial_columns`); groups are sorted by time, then Kafka partition and offset."""
    c = pl.col(agg.column) if agg.column else pl.lit(None)
    return {
        "count": [pl.len().cast(pl.Int64).alias(f"{name}__n")],
        "sum": [c.cast(pl.Float64).sum().alias(f"{name}__sum")],
        "mean": [
            c.count().cast(pl.Int64).alias(f"{name}__n"),
            c.cast(pl.Float64).sum().alias(f"{name}__sum"),
        ],
        "min": [c.min().alias(f"{name}__min")],
        "max": [c.max().alias(f"{name}__max")],
        "last": [c.last().alias(f"{name}__last"), pl.lit(True).alias(f"{name}__has")],
        "distinct": [c.drop_nulls().unique().sort().alias(f"{name}__set")],
    }[agg.kind]


def _group_partials(name: str, agg: Aggregation, frame: pl.LazyFrame, t: str) -> pl.LazyFrame:
    """Per (key, event time): the partial aggregate of the events at that instant."""
    return (
        frame.sort([agg.by, t, *TIEBREAK])
        .group_by([agg.by, t], maintain_order=True)
        .agg(_partial_exprs(name, agg))
    )


def _cumulate(name: str, agg: Aggregation, groups: pl.LazyFrame, t: str) -> pl.LazyFrame:
    """Running partials per key over instants, each including its own instant."""
    k = agg.by
    cols: list[pl.Expr] = []
    if agg.kind in ("count", "mean"):
        cols.append(pl.col(f"{name}__n").cum_sum().over(k))
    if agg.kind in ("sum", "mean"):
        cols.append(pl.col(f"{name}__sum").cum_sum().over(k))
    if agg.kind == "min":
        cols.append(pl.col(f"{name}__min").cum_min().forward_fill().over(k))
    if agg.kind == "max":
        cols.append(pl.col(f"{name}__max").cum_max().forward_fill().over(k))
    if agg.kind == "last":
        cols += [pl.col(f"{name}__last"), pl.col(f"{name}__has")]
    return groups.select(k, t, *cols).sort(k, t)


def _combine(name: str, agg: Aggregation) -> list[pl.Expr]:
    """Partial columns of ``base`` (suffix ``_base``) combined with the frame's."""
    out: list[pl.Expr] = []

    def both(col: str, how: str) -> pl.Expr:
        a, b = pl.col(col), pl.col(f"{col}_base")
        if how == "add":
            return (a.fill_null(0) + b.fill_null(0)).alias(col)
        if how == "min":
            return pl.min_horizontal(a, b).alias(col)
        return pl.max_horizontal(a, b).alias(col)

    if agg.kind in ("count", "mean"):
        out.append(both(f"{name}__n", "add"))
    if agg.kind in ("sum", "mean"):
        out.append(both(f"{name}__sum", "add"))
    if agg.kind == "min":
        out.append(both(f"{name}__min", "min"))
    if agg.kind == "max":
        out.append(both(f"{name}__max", "max"))
    if agg.kind == "last":  # frame events are all later than the base's
        has = pl.col(f"{name}__has").fill_null(False)
        out += [
            pl.when(has)
            .then(pl.col(f"{name}__last"))
            .otherwise(pl.col(f"{name}__last_base"))
            .alias(f"{name}__last"),
            (has | pl.col(f"{name}__has_base").fill_null(False)).alias(f"{name}__has"),
        ]
    if agg.kind == "distinct":
        empty = pl.lit([], pl.List(pl.Null))
        out.append(
            pl.concat_list(
                pl.col(f"{name}__set").fill_null(empty),
                pl.col(f"{name}__set_base").fill_null(empty),
            )
            .list.unique()
            .list.sort()
            .alias(f"{name}__set")
        )
    return out


def cumulative(
    name: str,
    agg: Aggregation,
    events: pl.LazyFrame,
    queries: pl.LazyFrame,
    t: str,
    base: pl.LazyFrame | None = None,
) -> pl.LazyFrame:
    """``queries`` (columns ``by``, ``t``) with the partial columns of ``agg`` over
    ``events`` strictly before each query's time, plus ``base`` (partials per key of
    events older than all of ``events``)."""
    if agg.kind == "distinct":
        return _distinct(name, agg, events, queries, t, base)
    running = _cumulate(name, agg, _group_partials(name, agg, events, t), t)
    cols = partial_columns(name, agg)
    q = queries.with_row_index("_q").sort(t)
    joined = q.join_asof(
        running.sort(t),
        on=t,
        by=agg.by,
        strategy="backward",
        allow_exact_matches=False,
        check_sortedness=False,
    )
    if base is not None:
        b = base.select(agg.by, *[pl.col(c).alias(f"{c}_base") for c in cols])
        joined = joined.join(b, on=agg.by, how="left").with_columns(_combine(name, agg))
    return joined.sort("_q").drop("_q")


def _distinct(
    name: str,
    agg: Aggregation,
    events: pl.LazyFrame,
    queries: pl.LazyFrame,
    t: str,
    base: pl.LazyFrame | None,
) -> pl.LazyFrame:
    """Distinct values before each query: the base's set, plus the values first seen
    in ``events`` (and not in the base) strictly before the query's time."""
    k, v = agg.by, agg.column
    assert v is not None
    first = events.drop_nulls(v).group_by(k, v).agg(pl.col(t).min())
    q = queries.with_row_index("_q")
    if base is not None:
        known = base.select(k, pl.col(f"{name}__set").alias(v)).explode(v).drop_nulls(v)
        first = first.join(known, on=[k, v], how="anti")
        sizes = base.select(k, pl.col(f"{name}__set").list.len().alias("_known"))
        q = q.join(sizes, on=k, how="left")
    else:
        q = q.with_columns(pl.lit(0, pl.UInt32).alias("_known"))
    running = (
        first.group_by(k, t).agg(pl.len().alias("_new")).sort(k, t)
        .with_columns(pl.col("_new").cum_sum().over(k))
    )  # fmt: skip
    joined = q.sort(t).join_asof(
        running.sort(t),
        on=t,
        by=k,
        strategy="backward",
        allow_exact_matches=False,
        check_sortedness=False,
    )
    count = pl.col("_known").fill_null(0).cast(pl.Int64) + pl.col("_new").fill_null(0)
    return joined.with_columns(count.alias(f"{name}__distinct")).sort("_q").drop("_q")


def windowed(
    name: str, agg: Aggregation, events: pl.LazyFrame, queries: pl.LazyFrame, t: str
) -> pl.LazyFrame:
    """``queries`` with feature ``name``: ``agg`` over the events of its key in
    ``[t - window, t)``. ``events`` must hold every event of that span."""
    assert agg.window is not None
    k = agg.by
    c = pl.col(agg.column).filter(~pl.col("_mark")) if agg.column else pl.lit(None)
    value = {
        "count": (~pl.col("_mark")).sum().cast(pl.Int64),
        "sum": c.cast(pl.Float64).sum(),
        "mean": c.cast(pl.Float64).mean(),
        "min": c.min(),
        "max": c.max(),
        "last": c.last(),
        "distinct": c.drop_nulls().n_unique().cast(pl.Int64),
    }[agg.kind]
    # Each query is put among the events as a marker row; a rolling window closed on
    # the left sees the events before it (never its own instant), markers left out.
    marks = queries.select(k, t).with_row_index("_q").with_columns(pl.lit(True).alias("_mark"))
    cols = list(dict.fromkeys([k, t, *TIEBREAK, *([agg.column] if agg.column else [])]))
    rows = events.select(cols).with_columns(pl.lit(False).alias("_mark"))
    lazy = pl.concat([rows, marks], how="diagonal_relaxed").drop_nulls(k)
    both = lazy.sort([k, t, *TIEBREAK], nulls_last=True).collect()
    rolled = both.rolling(index_column=t, period=agg.window, closed="left", group_by=k).agg(
        value.alias(name)
    )
    result = pl.concat([both.select("_q", "_mark"), rolled.select(name)], how="horizontal")
    marked = result.filter(pl.col("_mark")).select("_q", name).lazy()
    out = queries.with_row_index("_q").join(marked, on="_q", how="left")
    fill = {"count": 0, "sum": 0.0, "distinct": 0}.get(agg.kind)
    if fill is not None:
        out = out.with_columns(pl.col(name).fill_null(fill))
    return out.drop("_q")


def evaluate(
    aggs: dict[str, Aggregation],
    events: pl.LazyFrame,
    queries: pl.LazyFrame,
    t: str,
    base: pl.LazyFrame | None = None,
) -> pl.LazyFrame:
    """``queries`` with one column per aggregation: its value over ``events`` strictly
    before each query's time (unwindowed ones on top of ``base``, the partials per key
    of events older than every event in ``events``).

    >>> ev = pl.LazyFrame({"u": [1, 1, 1], "t": [1, 2, 2], "x": [1.0, 2.0, 4.0],
    ...                    "_kafka_partition": [0, 0, 0], "_kafka_offset": [0, 1, 2]})
    >>> evaluate({"n": prior_count("u"), "s": prior_sum("x", "u")}, ev, ev, "t").collect()[
    ...     "n"].to_list()
    [0, 1, 1]
    """
    # Materialized once: each aggregation reads them, and a lazy plan that joined
    # every aggregation back onto the queries would repeat the queries' plan each time.
    q_frame = queries.with_row_index("_row").collect()
    e_frame = events.collect().lazy()
    columns = []
    for name, agg in aggs.items():
        # Only the keys asked about matter: a few queries over many keys read little.
        keys = q_frame.lazy().select(agg.by).unique()
        e_keyed = e_frame.join(keys, on=agg.by, how="semi")
        q = q_frame.lazy().select("_row", agg.by, t)
        if agg.window is None:
            part = cumulative(name, agg, e_keyed.drop_nulls(agg.by), q, t, base)
            part = part.select("_row", _finish(name, agg).alias(name))
        else:
            part = windowed(name, agg, e_keyed, q, t).select("_row", name)
        value = part.sort("_row").collect()[name]
        columns.append(
            pl.select(pl.when(q_frame[agg.by].is_null()).then(None).otherwise(value))
            .to_series()
            .alias(name)
        )
    out = q_frame.with_columns(columns).lazy()
    return out.sort("_row").drop("_row")
