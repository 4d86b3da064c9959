"""Feature sets on real silver Delta tables: batch equals incremental, point in time, labels."""

from __future__ import annotations

import dataclasses
import datetime as dt

import polars as pl
import pyarrow as pa
import pytest

from features import (
    FeatureSet,
    Label,
    compute_features,
    prior_count,
    prior_mean,
    read_features,
    update_features,
)
from lake import Lake
from lake.silver import SilverTable

T0 = dt.datetime(2026, 5, 1, 8, tzinfo=dt.UTC)

ORDERS = FeatureSet(
    name="order_eta",
    source="silver.order_placed",
    key="order_id",
    event_time="placed_at",
    features={
        "distance_km": pl.col("distance_km"),
        "hour": pl.col("placed_at").dt.hour().cast(pl.Int64),
        "user_orders_before": prior_count("user_id"),
        "user_mean_distance_before": prior_mean("distance_km", "user_id"),
    },
    label=Label("silver.order_delivered", key="order_id", column="delivery_minutes"),
)


def _silver(root: str, subject: str, topic: str, rows: list[dict], first_offset: int) -> None:
    n = len(rows)
    times = [r.get("placed_at") or r.get("delivered_at") for r in rows]
    data = pa.Table.from_pylist(rows)
    lineage = {
        "_kafka_topic": pa.array([topic] * n),
        "_kafka_partition": pa.array([0] * n, pa.int32()),
        "_kafka_offset": pa.array(range(first_offset, first_offset + n), pa.int64()),
        "_kafka_timestamp": pa.array(times, pa.timestamp("us", tz="UTC")),
        "_schema_id": pa.array([1] * n, pa.int32()),
        "_schema_version": pa.array([1] * n, pa.int32()),
        "_date": pa.array([t.date() for t in times], pa.date32()),
    }
    for name, col in lineage.items():
        data = data.append_column(name, col)
    SilverTable(Lake(root), subject).append(topic, data)


def _orders(start: int, n: int) -> list[dict]:
    # Orders every 3 hours from 08:00: 16 orders over three days; users 0..2.
    return [
        {
            "order_id": i,
            "user_id": i % 3,
            "distance_km": float(i % 5 + 1),
            "placed_at": T0 + dt.timedelta(hours=3 * i),
        }
        for i in range(start, start + n)
    ]


def _delivered(ids: list[int], first_offset: int) -> list[dict]:
    return [
        {
            "order_id": i,
            "delivery_minutes": 20.0 + i,
            "delivered_at": T0 + dt.timedelta(hours=3 * i, minutes=20 + i),
        }
        for i in ids
    ]


def _sorted(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.sort("_kafka_offset")


def test_incremental_equals_batch_point_in_time_and_late_labels(lake_root):
    _silver(lake_root, "order_placed", "orders", _orders(0, 6), 0)
    first = update_features(Lake(lake_root), ORDERS)
    assert (first.new_rows, first.relabeled) == (6, 0)
    early = _sorted(read_features(Lake(lake_root), ORDERS))
    assert early["label"].null_count() == 6  # nothing delivered yet
    assert early["user_orders_before"].to_list() == [0, 0, 0, 1, 1, 1]
    assert early["user_mean_distance_before"].to_list() == [None, None, None, 1.0, 2.0, 3.0]

    _silver(lake_root, "order_delivered", "deliveries", _delivered([0, 1, 2], 0), 0)
    _silver(lake_root, "order_placed", "orders", _orders(6, 10), 6)
    second = update_features(Lake(lake_root), ORDERS)
    assert (second.new_rows, second.relabeled) == (10, 3)
    _silver(lake_root, "order_delivered", "deliveries", _delivered([3, 9, 15], 3), 3)
    third = update_features(Lake(lake_root), ORDERS)
    assert (third.new_rows, third.relabeled) == (0, 3)
    assert update_features(Lake(lake_root), ORDERS).version is None  # nothing new: no commit

    streamed = _sorted(read_features(Lake(lake_root), ORDERS))
    assert streamed.height == 16
    labeled = streamed.filter(pl.col("label").is_not_null())
    assert labeled["order_id"].to_list() == [0, 1, 2, 3, 9, 15]
    assert labeled["label"].to_list() == [20.0, 21.0, 22.0, 23.0, 29.0, 35.0]
    assert labeled["_label_offset"].to_list() == [0, 1, 2, 3, 4, 5]
    # Point in time: rows computed before later orders existed did not change.
    features = ["user_orders_before", "user_mean_distance_before", "hour", "distance_km"]
    assert streamed.head(6).select(features).equals(early.select(features))

    # The batch path, day by day, gives the same rows.
    batch = dataclasses.replace(ORDERS, name="order_eta_batch")
    days = sorted(set(streamed["_date"].to_list()))
    assert len(days) == 3
    for day in days:
        compute_features(Lake(lake_root), batch, day, day)
    assert _sorted(read_features(Lake(lake_root), batch)).equals(streamed)
    # And a backfill of one day again changes nothing.
    assert compute_features(Lake(lake_root), batch, days[0], days[0]) == 6
    assert _sorted(read_features(Lake(lake_root), batch)).equals(streamed)


def test_a_feature_named_like_the_key_is_refused():
    with pytest.raises(ValueError, match="rename them"):
        FeatureSet("x", "silver.s", key="id", event_time="t", features={"id": pl.col("id")})


def test_a_field_of_a_later_schema_version_is_null_until_it_lands(lake_root):
    fs = dataclasses.replace(
        ORDERS,
        name="with_tip",
        features={"tip": pl.col("tip").fill_null(0.25), "distance_km": pl.col("distance_km")},
        label=None,
    )
    _silver(lake_root, "order_placed", "orders", _orders(0, 3), 0)
    update_features(Lake(lake_root), fs)
    assert read_features(Lake(lake_root), fs)["tip"].to_list() == [0.25, 0.25, 0.25]
