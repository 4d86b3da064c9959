"""How far what was served lags what was learned, measured from the lake.

Four errors over the same events: the predictions that were served (joined with
the labels that arrived), the online learner's progressive error (its metric
trace: each row predicted before it was learned, in event order), the same learner
under delayed progressive validation (River's :func:`river.stream.simulate_qa`:
each row predicted at its event time by a model that has learned exactly the labels
that had arrived by then, i.e. the best any served model could do), and what a
batch-only policy would have served (each event predicted by the newest batch
version available then). Over a window after a drift, and over the whole run from the first event a
batch version could serve. The error is the spec's per-row error
(:meth:`ModelSpec.error`: absolute error, or 1 for a mistake), so the online
figure is exact for metrics that are running means of it (MAE, Accuracy's
complement); for other metrics it is None.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import polars as pl
from river import stream

from lake import Lake
from lake.names import (
    KAFKA_OFFSET,
    KAFKA_PARTITION,
    KAFKA_TIMESTAMP,
    LABEL_COORDINATES,
    features,
)
from training.model_registry import ModelRegistry
from training.rows import Rows, labeled_rows, predict
from training.scoring import labeled_predictions
from training.specs import ModelSpec

__all__ = ["ServingGap", "serving_gap"]

_MEAN_METRICS = {"MAE": False, "Accuracy": True}  # name -> the trace holds 1 - error


@dataclass(frozen=True)
class ServingGap:
    """Mean per-row error of what was served, of the online learner and of a batch-only
    policy, in ``window`` and from ``since`` on (None: nothing to measure)."""

    window: tuple[dt.datetime, dt.datetime]
    since: dt.datetime | None
    served_window: float | None
    online_window: float | None
    served: float | None
    online: float | None
    batch_only: float | None
    delayed_window: float | None = None  # the online learner, labels learned on arrival
    delayed: float | None = None
    blind: int = 0  # served events of the window placed before any of its labels arrived
    served_count: int = 0  # served events of the window
    blind_floor: float | None = None  # the served window error if every other event had none

    @property
    def window_ratio(self) -> float | None:
        """Served error over the online learner's in the window (the target is <= 1.3).

        >>> t = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
        >>> ServingGap((t, t), t, 3.0, 2.0, None, None, None).window_ratio
        1.5
        """
        if self.served_window is None or not self.online_window:
            return None
        return self.served_window / self.online_window

    @property
    def delayed_ratio(self) -> float | None:
        """Served error over the delayed online learner's in the window.

        >>> t = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
        >>> ServingGap((t, t), t, 3.0, 2.0, None, None, None, 2.5).delayed_ratio
        1.2
        """
        if self.served_window is None or not self.delayed_window:
            return None
        return self.served_window / self.delayed_window


def serving_gap(
    lake: Lake,
    spec: ModelSpec,
    drift_at: dt.datetime,
    *,
    window: dt.timedelta = dt.timedelta(hours=2),
    holdout: dt.timedelta = dt.timedelta(days=1),
) -> ServingGap:
    """Measure :class:`ServingGap` of ``spec`` for the ``window`` after ``drift_at``.

    A batch version is taken to serve from the end of its training window plus
    ``holdout`` (the newest labeled data it was trained beside).

    >>> from training.specs import model_spec  # doctest: +SKIP
    >>> serving_gap(lake, model_spec("eta"), drift_at).window_ratio  # doctest: +SKIP
    5.3
    """
    span = (drift_at, drift_at + window)
    served = _served(lake, spec)
    batch = _batch_only(lake, spec, holdout)
    since: dt.datetime | None = None
    if batch is not None and batch.height:
        since = batch.select(pl.col("event_time").min()).item()
    online = _online_trace(lake, spec)
    rows = labeled_rows(lake, spec)
    arrived = _arrivals(lake, spec, rows)
    delayed = _delayed(spec, rows, arrived)
    blind, count, floor = _blind(served, rows, arrived, span)
    return ServingGap(
        window=span,
        since=since,
        served_window=_mean(served, *span),
        online_window=_trace_mean(online, *span),
        served=_mean(served, since, None),
        online=_trace_mean(online, since, None),
        batch_only=_mean(batch, since, None),
        delayed_window=_mean(delayed, *span),
        delayed=_mean(delayed, since, None),
        blind=blind,
        served_count=count,
        blind_floor=floor,
    )


def _mean(
    errors: pl.DataFrame | None, start: dt.datetime | None, end: dt.datetime | None
) -> float | None:
    if errors is None or start is None:
        return None
    rows = errors.filter(pl.col("event_time") >= start)
    if end is not None:
        rows = rows.filter(pl.col("event_time") < end)
    return float(rows["error"].mean()) if rows.height else None  # type: ignore[arg-type]


def _served(lake: Lake, spec: ModelSpec) -> pl.DataFrame | None:
    labeled = labeled_predictions(lake, spec.name, spec.feature_set.name)
    if labeled is None:
        return None
    rows = labeled.filter(pl.col("role") == "serving").select("event_time", "label", "prediction")
    df = rows.collect()
    errors = [spec.error(y, p) for y, p in zip(df["label"], df["prediction"], strict=True)]
    return df.select("event_time").with_columns(pl.Series("error", errors, pl.Float64))


def _online_trace(lake: Lake, spec: ModelSpec) -> pl.DataFrame | None:
    """The online line's cumulative error total per trace point (rows, event time)."""
    trace = ModelRegistry(lake).trace(spec.name).filter(pl.col("kind") == "online")
    metric = type(spec.make_metric()).__name__
    if trace.is_empty() or metric not in _MEAN_METRICS:
        return None
    value = (1 - pl.col("value")) if _MEAN_METRICS[metric] else pl.col("value")
    return trace.sort("rows").select("event_time", "rows", (value * pl.col("rows")).alias("total"))


def _trace_mean(
    trace: pl.DataFrame | None, start: dt.datetime | None, end: dt.datetime | None
) -> float | None:
    """Mean error of the rows learned between ``start`` and ``end`` (trace resolution)."""
    if trace is None or start is None:
        return None
    before = trace.filter(pl.col("event_time") < start).tail(1)
    upto = trace if end is None else trace.filter(pl.col("event_time") < end)
    if upto.is_empty():
        return None
    rows0, total0 = (before["rows"][0], before["total"][0]) if before.height else (0, 0.0)
    rows1, total1 = upto["rows"][-1], upto["total"][-1]
    return (total1 - total0) / (rows1 - rows0) if rows1 > rows0 else None


def _batch_only(lake: Lake, spec: ModelSpec, holdout: dt.timedelta) -> pl.DataFrame | None:
    """Each labeled event predicted by the newest batch version available at its time."""
    registry = ModelRegistry(lake)
    batches = registry.versions(spec.name).filter(pl.col("kind") == "batch").sort("version")
    if batches.is_empty():
        return None
    fs = spec.feature_set
    rows = (
        lake.scan(features(fs.name))
        .filter(pl.col("label").is_not_null())
        .select(pl.col(fs.event_time).alias("event_time"), "label", *fs.feature_names)
        .sort("event_time")
        .collect()
    )
    froms = [t + holdout for t in batches["event_time_to"]]
    out = []
    for i, version in enumerate(batches["version"]):
        until = froms[i + 1] if i + 1 < len(froms) else None
        part = rows.filter(pl.col("event_time") >= froms[i])
        if until is not None:
            part = part.filter(pl.col("event_time") < until)
        model, metric = registry.load(spec.name, version=version).model, spec.make_metric()
        for r in part.iter_rows(named=True):
            y_pred = predict(model, metric, {f: r[f] for f in fs.feature_names})
            out.append((r["event_time"], spec.error(r["label"], y_pred)))
    when = pl.Series("event_time", [t for t, _ in out], rows.schema["event_time"])
    return pl.DataFrame([when, pl.Series("error", [e for _, e in out], pl.Float64)])


def _arrivals(lake: Lake, spec: ModelSpec, rows: Rows) -> list[dt.datetime] | None:
    """When each of ``rows``' labels arrived: its label event's Kafka timestamp (None:
    the label is a column of the event itself)."""
    label = spec.feature_set.label
    if not len(rows) or label is None or isinstance(label, str):
        return None
    _, part, off = LABEL_COORDINATES
    arrived = lake.scan(label.table).select(
        pl.col(KAFKA_PARTITION).alias(part),
        pl.col(KAFKA_OFFSET).alias(off),
        pl.col(KAFKA_TIMESTAMP).alias("_answered"),
    )
    answered: list[dt.datetime] = (
        rows.frame.lazy()
        .select(part, off)
        .with_row_index("_row")
        .join(arrived, on=[part, off], how="left")
        .sort("_row")
        .collect()["_answered"]
        .to_list()
    )
    return answered


def _blind(
    served: pl.DataFrame | None,
    rows: Rows,
    arrived: list[dt.datetime] | None,
    span: tuple[dt.datetime, dt.datetime],
) -> tuple[int, int, float | None]:
    """(blind, served, floor) in ``span``: how many served events were placed before the
    first label of any event of ``span`` arrived, how many were served, and what the
    window's mean error would still be if every other event had been served without
    error. Those blind events were served knowing no label from after the change, as any
    server that learns from labels would have served them."""
    if served is None or arrived is None:
        return 0, 0, None
    start, end = span
    window = served.filter((pl.col("event_time") >= start) & (pl.col("event_time") < end))
    first = min(
        (a for t, a in zip(rows.event_time.to_list(), arrived, strict=True)
         if a is not None and t >= start),
        default=None,
    )  # fmt: skip
    if not window.height or first is None:
        return 0, window.height, None
    blind = window.filter(pl.col("event_time") < first)
    return blind.height, window.height, float(blind["error"].sum()) / window.height


def _delayed(
    spec: ModelSpec, rows: Rows, answered: list[dt.datetime] | None
) -> pl.DataFrame | None:
    """The online learner's error under delayed progressive validation: River's
    question/answer simulation over the labeled rows (asked at the event time, answered
    at the label event's Kafka timestamp), predicting each question, learning each
    answer."""
    if answered is None:
        return None
    asked = rows.event_time.to_list()
    questions: list[dict[Any, Any]] = [{"i": i} for i in range(len(rows))]
    model = spec.make_model()
    out: list[tuple[dt.datetime, float]] = []
    for _, q, y in stream.simulate_qa(
        zip(questions, rows.y, strict=True),
        moment=lambda q: asked[q["i"]],
        delay=lambda q, y: max(answered[q["i"]] - asked[q["i"]], dt.timedelta(0)),
    ):
        x = rows.x[q["i"]]
        if y is None:  # a question: what a server could answer now
            out.append((asked[q["i"]], spec.error(rows.y[q["i"]], model.predict_one(x))))
        else:  # its label arrived: learn it
            model.learn_one(x, y)
    when = pl.Series("event_time", [t for t, _ in out], rows.event_time.dtype)
    return pl.DataFrame([when, pl.Series("error", [e for _, e in out], pl.Float64)])
