"""Labeled feature rows as a model sees them: (x, y) in event-time order, with lineage."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import polars as pl

from features import EVENT_ORDER_TIEBREAK, Label
from lake import Lake, TableNotInLake
from lake.names import COORDINATES, LABEL_COORDINATES
from lake.names import features as features_table
from training.model_registry import Cursor, OffsetRanges
from training.specs import ModelSpec

__all__ = [
    "Rows",
    "count_labeled",
    "labeled_rows",
    "newest_labeled",
    "predict",
    "score",
    "table_versions",
]


@dataclass
class Rows:
    """Feature rows ready to learn from or score."""

    frame: pl.DataFrame  # the rows, event-time order, with lineage
    x: list[dict[str, Any]]
    y: list[Any]
    event_time: pl.Series  # index it for single values: a list of datetimes is slow to build
    table_version: int | None  # of features/<name> when read

    def __len__(self) -> int:
        return len(self.y)

    def offsets(self) -> OffsetRanges:
        """Kafka offset ranges (source and label events) these rows came from."""
        out: OffsetRanges = {}
        for topic, part, off in (COORDINATES, LABEL_COORDINATES):
            agg = self.frame.group_by(topic, part).agg(
                pl.col(off).min().alias("lo"), pl.col(off).max().alias("hi")
            )
            for t, p, lo, hi in agg.iter_rows():
                cur = out.setdefault(t, {}).get(str(p))
                out[t][str(p)] = [min(cur[0], lo), max(cur[1], hi)] if cur else [lo, hi]
        return out

    def label_cursor(self) -> Cursor:
        """The last label offset per topic and partition in these rows."""
        topic, part, off = LABEL_COORDINATES
        agg = self.frame.group_by(topic, part).agg(pl.col(off).max())
        out: Cursor = {}
        for t, p, o in agg.iter_rows():
            out.setdefault(t, {})[str(p)] = int(o)
        return out


def labeled_rows(
    lake: Lake,
    spec: ModelSpec,
    *,
    after: Cursor | None = None,
    until: Cursor | None = None,
    since: dt.datetime | None = None,
    before: dt.datetime | None = None,
) -> Rows:
    """Labeled rows of the spec's feature set, in event-time order.

    ``after``/``until`` bound the label's offsets (exclusive/inclusive, per topic
    and partition, as cursors ``{topic: {partition: offset}}``); ``since``/``before``
    bound event time (inclusive/exclusive).
    """
    fs = spec.feature_set
    try:
        table = lake.table(features_table(fs.name))
    except TableNotInLake:
        return Rows(pl.DataFrame(), [], [], pl.Series([], dtype=pl.Datetime("us", "UTC")), None)
    frame = _labeled(pl.scan_delta(table), spec, after, until, since, before)
    df = frame.sort([fs.event_time, *EVENT_ORDER_TIEBREAK]).collect()
    names = spec.feature_names
    xs = df.select(names).to_dicts()
    if any(df[c].null_count() for c in names):  # River models want no None values
        xs = [{k: v for k, v in x.items() if v is not None} for x in xs]
    y = df["label"].to_list()  # typed as the schema types it: classes stay str/int/bool
    return Rows(df, xs, y, df[fs.event_time], table.version())


def count_labeled(
    lake: Lake, spec: ModelSpec, *, since: dt.datetime | None = None,
    before: dt.datetime | None = None,
) -> int:  # fmt: skip
    """How many rows :func:`labeled_rows` would return for ``since``/``before``; no row
    is built.

    >>> count_labeled(lake, eta, since=t0, before=t1)  # doctest: +SKIP
    420
    """
    try:
        table = lake.table(features_table(spec.feature_set.name))
    except TableNotInLake:
        return 0
    frame = _labeled(pl.scan_delta(table), spec, None, None, since, before)
    return int(frame.select(pl.len()).collect().item())


def _labeled(
    frame: pl.LazyFrame,
    spec: ModelSpec,
    after: Cursor | None,
    until: Cursor | None,
    since: dt.datetime | None,
    before: dt.datetime | None,
) -> pl.LazyFrame:
    """The labeled rows of ``frame`` within the label cursors and event-time bounds."""
    event_time = spec.feature_set.event_time
    frame = frame.filter(pl.col("label").is_not_null())
    if after:
        frame = frame.filter(~_upto(after))
    if until:
        frame = frame.filter(_upto(until))
    if since is not None:
        frame = frame.filter(pl.col(event_time) >= since)
    if before is not None:
        frame = frame.filter(pl.col(event_time) < before)
    return frame


def newest_labeled(lake: Lake, spec: ModelSpec) -> dt.datetime | None:
    """Event time of the newest labeled row of the spec's feature set (None: none yet);
    one column is read, no rows are built."""
    fs = spec.feature_set
    try:
        table = lake.table(features_table(fs.name))
    except TableNotInLake:
        return None
    newest = (
        pl.scan_delta(table)
        .filter(pl.col("label").is_not_null())
        .select(pl.col(fs.event_time).max())
        .collect()
        .item()
    )
    return newest


def _upto(cursor: Cursor) -> pl.Expr:
    """Rows whose label offset is at or before ``cursor`` in its topic-partition."""
    topic, part, off = LABEL_COORDINATES
    expr = pl.lit(False)
    for t, parts in cursor.items():
        for p, last in parts.items():
            expr = expr | ((pl.col(topic) == t) & (pl.col(part) == int(p)) & (pl.col(off) <= last))
    return expr


def predict(model: Any, metric: Any, x: dict[str, Any]) -> Any:
    """What ``metric`` needs from ``model`` for ``x``: a label, or class probabilities."""
    if getattr(metric, "requires_labels", True):
        return model.predict_one(x)
    return model.predict_proba_one(x)


def score(model: Any, spec: ModelSpec, rows: Rows) -> float:
    """``spec``'s metric of ``model`` on ``rows``, predicting only (no learning)."""
    metric = spec.make_metric()
    for x, y in zip(rows.x, rows.y, strict=True):
        y_pred = predict(model, metric, x)
        if y_pred is not None and y_pred != {}:  # no prediction yet: not scored (as River)
            metric.update(y, y_pred)
    return float(metric.get())


def table_versions(lake: Lake, spec: ModelSpec) -> dict[str, int]:
    """The Delta version of every table the spec's rows come from, as of now.

    Recorded in a model version's lineage: the features table, its source and
    the label's table.
    """
    fs = spec.feature_set
    names = [features_table(fs.name), fs.source]
    if isinstance(fs.label, Label):
        names.append(fs.label.table)
    out = {}
    for name in names:
        try:
            out[name] = lake.table(name).version()
        except TableNotInLake:
            continue
    return out
