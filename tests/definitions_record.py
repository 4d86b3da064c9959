"""Definitions module for the subject-strategy tests: a model over record-named subjects."""

import polars as pl
from river import linear_model, preprocessing

from features import FeatureSet, Label
from lake.names import silver
from training import ModelSpec, register_model

PLACED, DELIVERED = "shop.Placed", "shop.Delivered"  # subjects under the record strategy

SHIP = register_model(
    ModelSpec(
        name="ship_time",
        feature_set=FeatureSet(
            name="ship",
            source=silver(PLACED),
            key="order_id",
            event_time="at",
            features={"distance": pl.col("distance")},
            label=Label(silver(DELIVERED), key="order_id", column="minutes"),
        ),
        make_model=lambda: preprocessing.StandardScaler() | linear_model.LinearRegression(),
    )
)
