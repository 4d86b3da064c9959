"""Declaring a feature set: one source table, features, an optional label.

A feature is either a row-local Polars expression over the event's own fields
(``pl.col("distance_km")``, ``pl.col("placed_at").dt.hour()``) or an
aggregation by an entity key over the events strictly before it
(:mod:`features.aggregations`: ``prior_count``, ``prior_sum``, ``prior_mean``,
``prior_min``, ``prior_max``, ``prior_last``, ``prior_distinct``, each over all
earlier events or a sliding event-time ``window``). Declared once, it is
computed three ways with one semantics (:mod:`features.compute`): by day
(batch), from a cursor with state kept in the lake (incremental), and for a new
event from that state (online).

>>> import datetime as dt
>>> orders = FeatureSet(
...     name="order_eta",
...     source="silver.order_placed-value",
...     key="order_id",
...     event_time="placed_at",
...     features={
...         "distance_km": pl.col("distance_km"),
...         "hour": pl.col("placed_at").dt.hour(),
...         "user_orders_before": prior_count("user_id"),
...         "kitchen_load_30m": prior_count("restaurant_id", window=dt.timedelta(minutes=30)),
...     },
...     label=Label("silver.order_delivered-value", key="order_id", column="delivery_minutes"),
... )
>>> orders.feature_names
['distance_km', 'hour', 'user_orders_before', 'kitchen_load_30m']
>>> sorted(orders.aggregations)
['kitchen_load_30m', 'user_orders_before']
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

import polars as pl

from features.aggregations import (
    Aggregation,
    prior_count,
    prior_distinct,
    prior_last,
    prior_max,
    prior_mean,
    prior_min,
    prior_sum,
)
from features.errors import NotRowLocal
from lake import validate_name

__all__ = [
    "FeatureSet",
    "Label",
    "prior_count",
    "prior_distinct",
    "prior_last",
    "prior_max",
    "prior_mean",
    "prior_min",
    "prior_sum",
]

# Functions that look at other rows: not evaluable from one event and the state.
_CROSS_ROW = re.compile(
    r"\.(over|cum_\w+|shift|diff|rolling\w*|rank|pct_change|forward_fill|backward_fill"
    r"|sum|mean|min|max|count|len|n_unique|first|last|median|std|var|quantile|sort\w*"
    r"|unique\w*|head|tail|gather\w*|reverse|arg_\w+)\("
)


@dataclass(frozen=True)
class Label:
    """The target, taken from a later event: ``table.column`` joined by ``key``.

    Until that event has landed, the feature row has a null label. The first
    label event of a key (lowest Kafka partition, then offset) is the label.
    """

    table: str
    key: str
    column: str


@dataclass(frozen=True)
class FeatureSet:
    """Features of one silver table, one row per source row.

    ``label`` is a :class:`Label` (a later event), the name of a column of the
    source itself, or None (features only). ``allowed_lateness`` is how far
    behind the newest event time an event may arrive and still be counted
    exactly by the incremental path (see :mod:`features.compute`).
    ``batch_only`` allows row-local expressions that look at other rows
    (``.over``, ``cum_sum``, ...), which only the batch path can evaluate.
    """

    name: str
    source: str
    key: str
    event_time: str
    features: dict[str, pl.Expr | Aggregation] = field(default_factory=dict)
    label: Label | str | None = None
    allowed_lateness: dt.timedelta = dt.timedelta(0)
    batch_only: bool = False

    def __post_init__(self) -> None:
        validate_name(self.name)  # it becomes the path features/<name>
        reserved = {"label", self.key, self.event_time}
        clash = reserved & set(self.features)
        if clash:
            raise ValueError(
                f"feature set {self.name!r}: feature names {sorted(clash)} are taken by the "
                "key, the event time or the label; rename them"
            )
        if self.allowed_lateness < dt.timedelta(0):
            raise ValueError(f"allowed_lateness must be 0 or more, got {self.allowed_lateness}")
        bad = {
            name: type(f).__name__
            for name, f in self.features.items()
            if not isinstance(f, pl.Expr | Aggregation)
        }
        if bad:
            raise TypeError(
                f"feature set {self.name!r}: features must be Polars expressions or "
                f"aggregations (prior_count, ...); got {bad}"
            )

    @property
    def feature_names(self) -> list[str]:
        """The feature columns, in declaration order."""
        return list(self.features)

    @property
    def row_local(self) -> dict[str, pl.Expr]:
        """The features that are expressions over the event's own fields."""
        return {n: f for n, f in self.features.items() if isinstance(f, pl.Expr)}

    @property
    def aggregations(self) -> dict[str, Aggregation]:
        """The features that aggregate earlier events of an entity."""
        return {n: f for n, f in self.features.items() if isinstance(f, Aggregation)}

    @property
    def inputs(self) -> list[str]:
        """Every source column the features read (the key and event time first)."""
        cols = [self.key, self.event_time]
        for f in self.row_local.values():
            cols += f.meta.root_names()
        for a in self.aggregations.values():
            cols += a.inputs
        if isinstance(self.label, str):
            cols.append(self.label)
        return list(dict.fromkeys(cols))

    @property
    def horizon(self) -> dt.timedelta:
        """The longest window (0 when there is none): how much history windows need."""
        windows = [a.window for a in self.aggregations.values() if a.window is not None]
        return max(windows, default=dt.timedelta(0))

    def check_incremental(self) -> None:
        """Raise :class:`NotRowLocal` if a row-local feature looks at other rows, which
        the incremental and online paths cannot evaluate (unless ``batch_only``).

        >>> FeatureSet("f", "silver.s", key="id", event_time="t",
        ...            features={"n": pl.col("x").cum_sum().over("u")}).check_incremental()
        Traceback (most recent call last):
        ...
        features.errors.NotRowLocal: feature 'n' of feature set 'f' looks at other rows ...
        """
        for name, expr in self.row_local.items():
            if _CROSS_ROW.search(str(expr).replace(" ", "")):
                raise NotRowLocal(self.name, name, str(expr), batch_only=self.batch_only)
