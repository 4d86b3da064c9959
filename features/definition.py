"""Declaring a feature set: one source table, Polars expressions, an optional label.

A feature set is declared once and computed two ways, a date range at a time
(batch) and for the rows added since a cursor (incremental), by the same code
(:mod:`features.compute`), so training and serving cannot drift apart.

Expressions are evaluated over the source's rows in event-time order (ties
broken by Kafka partition and offset), so history aggregates written with the
helpers below see only rows strictly before their own: point-in-time correct
by construction.

>>> import polars as pl
>>> orders = FeatureSet(
...     name="order_eta",
...     source="silver.order_placed",
...     key="order_id",
...     event_time="placed_at",
...     features={
...         "distance_km": pl.col("distance_km"),
...         "hour": pl.col("placed_at").dt.hour(),
...         "user_orders_before": prior_count("user_id"),
...         "user_mean_distance_before": prior_mean("distance_km", "user_id"),
...     },
...     label=Label("silver.order_delivered", key="order_id", column="delivery_minutes"),
... )
>>> orders.feature_names
['distance_km', 'hour', 'user_orders_before', 'user_mean_distance_before']
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from lake import validate_name

__all__ = ["FeatureSet", "Label", "prior_count", "prior_mean", "prior_sum"]


@dataclass(frozen=True)
class Label:
    """The target, taken from a later event: ``table.column`` joined by ``key``.

    Until that event has landed, the feature row has a null label.
    """

    table: str
    key: str
    column: str


@dataclass(frozen=True)
class FeatureSet:
    """Features of one silver table, one row per source row.

    ``label`` is a :class:`Label` (a later event), the name of a column of the
    source itself, or None (features only).
    """

    name: str
    source: str
    key: str
    event_time: str
    features: dict[str, pl.Expr] = field(default_factory=dict)
    label: Label | str | None = None

    def __post_init__(self) -> None:
        validate_name(self.name)  # it becomes the path features/<name>
        reserved = {"label", self.key, self.event_time}
        clash = reserved & set(self.features)
        if clash:
            raise ValueError(
                f"feature set {self.name!r}: feature names {sorted(clash)} are taken by the "
                "key, the event time or the label; rename them"
            )

    @property
    def feature_names(self) -> list[str]:
        """The feature columns, in declaration order."""
        return list(self.features)


def prior_count(by: str) -> pl.Expr:
    """How many earlier rows have the same ``by`` (0 for the first).

    >>> df = pl.DataFrame({"u": [1, 2, 1, 1]})
    >>> df.select(prior_count("u").alias("n"))["n"].to_list()
    [0, 0, 1, 2]
    """
    return pl.int_range(pl.len()).over(by).cast(pl.Int64)


def prior_sum(column: str, by: str) -> pl.Expr:
    """Sum of ``column`` over earlier rows with the same ``by`` (0 for the first).

    >>> df = pl.DataFrame({"u": [1, 1, 1], "x": [1.0, 2.0, 4.0]})
    >>> df.select(prior_sum("x", "u").alias("s"))["s"].to_list()
    [0.0, 1.0, 3.0]
    """
    return (pl.col(column).cum_sum() - pl.col(column)).over(by)


def prior_mean(column: str, by: str) -> pl.Expr:
    """Mean of ``column`` over earlier rows with the same ``by`` (null for the first).

    >>> df = pl.DataFrame({"u": [1, 1, 1], "x": [1.0, 2.0, 4.0]})
    >>> df.select(prior_mean("x", "u").alias("m"))["m"].to_list()
    [None, 1.0, 1.5]
    """
    n = prior_count(by)
    return pl.when(n > 0).then(prior_sum(column, by) / n).otherwise(None)
