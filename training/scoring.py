"""Scoring with an audit trail: online features by the same definitions, the champion predicts.

A :class:`Scorer` takes decoded events (silver-shaped rows with lineage),
computes their features with :class:`features.OnlineFeatures` (the incremental
path's state, same semantics as the rows training learns from), predicts with
the model the ``champion`` alias names, and writes
``predictions/<model>``: the prediction, the model name and version, the input's
topic/partition/offset and event time. Writes are fenced by input offset (Delta
``txn``, as bronze), so a restarted scorer never writes a prediction twice.

The alias is checked every ``reload_s`` seconds: promoting a new champion
switches the scorer without a restart. :func:`live_metrics` joins predictions
with the labels that arrived later, per model version.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any

import polars as pl
import pyarrow as pa

from features import OnlineFeatures
from lake import AppendResult, Lake, TableNotInLake
from lake.fenced import fenced_append
from lake.names import COORDINATES, DATE, UTC_MICROS, features
from lake.names import predictions as predictions_table
from lake.offsets import txn_versions
from training.errors import ModelNotFound
from training.model_registry import ModelRegistry, ModelVersion
from training.specs import ModelSpec

__all__ = [
    "PREDICTION_SCHEMA",
    "Scorer",
    "labeled_predictions",
    "live_metrics",
    "prediction_app_id",
]

log = logging.getLogger(__name__)

PREDICTION_SCHEMA = pa.schema(
    [
        pa.field("model", pa.string(), nullable=False),
        pa.field("model_version", pa.int64(), nullable=False),
        pa.field("prediction", pa.float64()),
        pa.field("entity_key", pa.string()),
        pa.field("event_time", UTC_MICROS),
        pa.field("input_topic", pa.string(), nullable=False),
        pa.field("input_partition", pa.int32(), nullable=False),
        pa.field("input_offset", pa.int64(), nullable=False),
        pa.field("scored_at", UTC_MICROS, nullable=False),
        pa.field("date", pa.date32(), nullable=False),
    ]
)


def prediction_app_id(model: str, topic: str, partition: int) -> str:
    """The ``txn`` app id of ``predictions/<model>``: last input offset scored.

    >>> prediction_app_id("eta", "orders", 1)
    'eventlake-predictions:eta:orders:1'
    """
    return f"eventlake-predictions:{model}:{topic}:{partition}"


class Scorer:
    """Predicts with the champion of ``spec.name`` and records every prediction."""

    def __init__(self, lake: Lake, spec: ModelSpec, *, reload_s: float = 2.0) -> None:
        self.lake = lake
        self.spec = spec
        self.reload_s = reload_s
        self.registry = ModelRegistry(lake)
        self.current: ModelVersion = self._champion()
        self._checked = time.monotonic()
        # Features from the incremental path's state (caught up with silver), in memory:
        # bounded by keys and the lateness and window spans, not by the history.
        self.online = OnlineFeatures.load(lake, spec.feature_set)
        self._table = lake.open_or_create(
            predictions_table(spec.name), PREDICTION_SCHEMA, partition_by=["date"]
        )

    def _champion(self) -> ModelVersion:
        try:
            return self.registry.load(self.spec.name, alias="champion")
        except ModelNotFound:
            return self.registry.load(self.spec.name)  # no champion yet: the newest

    def _maybe_reload(self) -> None:
        if time.monotonic() - self._checked < self.reload_s:
            return
        self._checked = time.monotonic()
        version = self.registry.alias(self.spec.name, "champion")
        if version is not None and version != self.current.version:
            old = self.current.version
            self.current = self.registry.load(self.spec.name, version=version)
            log.info("%s: champion is now v%d (was v%d)", self.spec.name, version, old)

    def committed(self, topic: str, partitions: list[int]) -> dict[int, int | None]:
        """The last input offset scored per partition (None: none yet)."""
        self._table.update_incremental()
        return txn_versions(
            self._table, lambda p: prediction_app_id(self.spec.name, topic, p), partitions
        )

    def score(self, events: pl.DataFrame) -> pl.DataFrame:
        """Predictions for ``events`` (silver rows of the feature set's source)."""
        self._maybe_reload()
        if events.is_empty():
            return pl.DataFrame(PREDICTION_SCHEMA.empty_table())
        fs = self.spec.feature_set
        rows = self.online.features(events)
        self.online.observe(events)
        model: Any = self.current.model
        names = self.spec.feature_names
        xs = rows.select(names).to_dicts()
        if self.spec.task == "classification":
            preds = [_proba_true(model.predict_proba_one(_clean(x))) for x in xs]
        else:
            preds = [float(model.predict_one(_clean(x))) for x in xs]
        now = dt.datetime.now(dt.UTC)
        return pl.DataFrame(
            {
                "model": [self.spec.name] * rows.height,
                "model_version": [self.current.version] * rows.height,
                "prediction": preds,
                "entity_key": rows[fs.key].cast(pl.String),
                "event_time": rows[fs.event_time],
                "input_topic": rows[COORDINATES[0]],
                "input_partition": rows[COORDINATES[1]],
                "input_offset": rows[COORDINATES[2]],
                "scored_at": [now] * rows.height,
                "date": rows[DATE],
            }
        )

    def write(self, predictions: pl.DataFrame) -> AppendResult | None:
        """Append ``predictions`` to ``predictions/<model>``, once per input offset."""
        if predictions.is_empty():
            return None
        table = predictions.to_arrow().cast(PREDICTION_SCHEMA)
        topic = table.column("input_topic")[0].as_py()
        return fenced_append(
            self._table,
            table,
            app_id=lambda p: prediction_app_id(self.spec.name, topic, p),
            partition="input_partition",
            offset="input_offset",
            partition_by=["date"],
            storage_options=self.lake.storage_options,
            label=predictions_table(self.spec.name),
        )


def _clean(x: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in x.items() if v is not None}


def _proba_true(proba: dict[Any, float]) -> float:
    return float(proba.get(True, 0.0))


def labeled_predictions(lake: Lake, model: str, feature_set: str) -> pl.LazyFrame | None:
    """``predictions/<model>`` joined with the labels that have arrived in
    ``features/<feature_set>`` (by the input's lineage); None if either table is missing."""
    try:
        preds = lake.scan(predictions_table(model))
        labels = lake.scan(features(feature_set)).filter(pl.col("label").is_not_null())
    except TableNotInLake:
        return None
    return preds.join(
        labels.select(*COORDINATES, "label"),
        left_on=["input_topic", "input_partition", "input_offset"],
        right_on=list(COORDINATES),
    )


def live_metrics(lake: Lake, spec: ModelSpec) -> pl.DataFrame:
    """The spec's metric and mean per-row error (:meth:`ModelSpec.error`) per model
    version over predictions whose label has arrived.

    Columns: ``model_version``, ``labeled`` (predictions with a label), the metric,
    ``mean_error``.
    """
    labeled = labeled_predictions(lake, spec.name, spec.feature_set.name)
    if labeled is None:
        return pl.DataFrame()
    joined = labeled.sort("event_time").collect()
    out = []
    name = type(spec.make_metric()).__name__
    classify = spec.task == "classification"
    for (version,), group in joined.group_by(["model_version"], maintain_order=True):
        metric, errors = spec.make_metric(), 0.0
        for y, p in zip(group["label"], group["prediction"], strict=True):
            y, p = (bool(y), p >= 0.5) if classify else (y, p)
            metric.update(y, p)
            errors += spec.error(y, p)
        out.append(
            {
                "model_version": version,
                "labeled": group.height,
                name: float(metric.get()),
                "mean_error": errors / group.height,
            }
        )
    return pl.DataFrame(out).sort("model_version") if out else pl.DataFrame()
