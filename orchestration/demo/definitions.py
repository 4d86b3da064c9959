"""The demo's food-delivery app: its event schemas, its feature set and its model.

Importing this module registers the ``eta`` model (delivery minutes from what
is known when an order is placed), which is how users add their own: a module
named in ``EVENTLAKE_DEFINITIONS`` that calls :func:`training.register_model`.
"""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
from river import linear_model, metrics, optim, preprocessing

from features import FeatureSet, Label, prior_count, prior_mean
from lake.names import silver, value_subject
from training import ModelSpec, register_model

__all__ = [
    "DELIVERED",
    "DELIVERED_TOPIC",
    "ETA",
    "ORDERS_TOPIC",
    "ORDER_ETA",
    "PLACED_V1",
    "PLACED_V2",
]

ORDERS_TOPIC = "order_placed"
DELIVERED_TOPIC = "order_delivered"

_MILLIS = {"type": "long", "logicalType": "timestamp-millis"}
_PLACED_FIELDS = [
    {"name": "order_id", "type": "long"},
    {"name": "user_id", "type": "long"},
    {"name": "restaurant_id", "type": "long"},
    {"name": "distance_km", "type": "double"},
    {"name": "items", "type": "int"},
    {"name": "placed_at", "type": _MILLIS},
]
PLACED_V1 = json.dumps(
    {"type": "record", "name": "OrderPlaced", "namespace": "demo", "fields": _PLACED_FIELDS}
)
# v2: the app upgrade adds two optional fields with defaults (BACKWARD compatible).
PLACED_V2 = json.dumps(
    {
        "type": "record",
        "name": "OrderPlaced",
        "namespace": "demo",
        "fields": [
            *_PLACED_FIELDS,
            {"name": "courier_load", "type": "double", "default": 0.5},
            {"name": "weather", "type": ["null", "string"], "default": None},
        ],
    }
)
DELIVERED = json.dumps(
    {
        "type": "record",
        "name": "OrderDelivered",
        "namespace": "demo",
        "fields": [
            {"name": "order_id", "type": "long"},
            {"name": "delivered_at", "type": _MILLIS},
            {"name": "delivery_minutes", "type": "double"},
        ],
    }
)

ORDER_ETA = FeatureSet(
    name="order_eta",
    source=silver(value_subject(ORDERS_TOPIC)),
    key="order_id",
    event_time="placed_at",
    features={
        "distance_km": pl.col("distance_km"),
        "items": pl.col("items").cast(pl.Float64),
        "hour": pl.col("placed_at").dt.hour().cast(pl.Float64),
        "rush_hour": pl.col("placed_at").dt.hour().is_in([12, 13, 19, 20]).cast(pl.Float64),
        "courier_load": pl.col("courier_load").fill_null(0.5),
        "user_orders_before": prior_count("user_id"),
        "restaurant_distance_before": prior_mean("distance_km", "restaurant_id"),
        # Orders the restaurant took in the 30 minutes before: how busy the kitchen is.
        "kitchen_load_30m": prior_count("restaurant_id", window=dt.timedelta(minutes=30)),
    },
    label=Label(silver(value_subject(DELIVERED_TOPIC)), key="order_id", column="delivery_minutes"),
)


def _eta_model() -> object:
    # Adam, not plain SGD: when v2's courier_load starts varying after a constant
    # default, the scaler's first scaled values are huge and SGD diverges.
    return preprocessing.StandardScaler() | linear_model.LinearRegression(
        optimizer=optim.Adam(0.05), intercept_lr=0.1
    )


ETA = register_model(
    ModelSpec(
        name="eta",
        feature_set=ORDER_ETA,
        make_model=_eta_model,
        make_metric=metrics.MAE,
    )
)
