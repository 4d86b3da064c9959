"""Lineage in one call: which model version scored a record, and what trained it.

>>> import tempfile
>>> explain(Lake(tempfile.mkdtemp()), "eta", "orders", 0, 5)
Traceback (most recent call last):
...
training.errors.ModelNotFound: a prediction of orders[0]@5 by model 'eta' not found; ...
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from lake import Lake, TableNotInLake
from lake.names import LABEL_COORDINATES, features, predictions
from training.errors import ModelNotFound
from training.model_registry import ModelRegistry, OffsetRanges

__all__ = ["Explanation", "explain"]


@dataclass
class Explanation:
    """A prediction, the version that made it, and the records that trained it."""

    prediction: dict[str, Any]
    version: int
    kind: str
    trained_on: OffsetRanges  # topic -> partition -> [first, last] Kafka offsets
    feature_set: str
    training_rows: pl.LazyFrame  # the feature rows of those offsets

    def __str__(self) -> str:
        ranges = "; ".join(
            f"{t}[{p}] {lo}..{hi}"
            for t, parts in self.trained_on.items()
            for p, (lo, hi) in parts.items()
        )
        return (
            f"scored by {self.prediction['model']} v{self.version} ({self.kind}) at "
            f"{self.prediction['scored_at']}: prediction {self.prediction['prediction']}; "
            f"v{self.version} was trained on {ranges}"
        )


def explain(
    lake: Lake,
    model: str,
    topic: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
    *,
    request_id: str | None = None,
    entity_key: str | None = None,
) -> Explanation:
    """Which version of ``model`` answered for ``topic[partition]@offset`` (a Kafka event)
    or for ``request_id`` (an HTTP request; ``entity_key`` picks one of its events), and
    which records (Kafka offsets, and the feature rows themselves) trained that version."""
    if request_id is not None:
        what = f"a prediction for request {request_id!r} by model {model!r}"
        cond = pl.col("request_id") == request_id
        if entity_key is not None:
            cond = cond & (pl.col("entity_key") == entity_key)
    else:
        what = f"a prediction of {topic}[{partition}]@{offset} by model {model!r}"
        cond = (
            (pl.col("input_topic") == topic)
            & (pl.col("input_partition") == partition)
            & (pl.col("input_offset") == offset)
        )
    try:
        preds = lake.scan(predictions(model))
    except TableNotInLake:
        raise ModelNotFound(what) from None
    hit = preds.filter(cond & (pl.col("role") != "shadow")).collect()  # the answer, not a shadow
    if hit.is_empty():
        raise ModelNotFound(what)
    prediction = hit.sort("scored_at").row(0, named=True)
    mv = ModelRegistry(lake).load(model, version=prediction["model_version"])
    fs = mv.lineage.get("feature_set", "")
    label_topic, label_partition, label_offset = LABEL_COORDINATES
    cond = pl.lit(False)
    for t, parts in mv.lineage_offsets.items():
        for p, (lo, hi) in parts.items():
            cond = cond | (
                (pl.col(label_topic) == t)
                & (pl.col(label_partition) == int(p))
                & pl.col(label_offset).is_between(lo, hi)
            )
    cond = cond & pl.col("label").is_not_null()
    if mv.kind == "batch" and mv.event_time_from and mv.event_time_to:  # a window, not a stream
        window = (mv.event_time_from, mv.event_time_to)
        cond = cond & pl.col(mv.lineage["event_time"]).is_between(*window)
    rows = lake.scan(features(fs)).filter(cond) if fs else pl.LazyFrame()
    return Explanation(prediction, mv.version, mv.kind, mv.lineage_offsets, fs, rows)
