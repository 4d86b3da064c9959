"""Lineage in one call: which model version scored a record, and what trained it.

>>> import tempfile
>>> explain(tempfile.mkdtemp(), "eta", "orders", 0, 5)
Traceback (most recent call last):
...
training.errors.ModelNotFound: a prediction of orders[0]@5 by model 'eta' not found; ...
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from lake.catalog import Lake, TableNotInLake
from training.errors import ModelNotFound
from training.registry import ModelRegistry, Offsets

__all__ = ["Explanation", "explain"]


@dataclass
class Explanation:
    """A prediction, the version that made it, and the records that trained it."""

    prediction: dict[str, Any]
    version: int
    kind: str
    trained_on: Offsets  # topic -> partition -> [first, last] Kafka offsets
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
    root: str,
    model: str,
    topic: str,
    partition: int,
    offset: int,
    *,
    storage_options: dict[str, str] | None = None,
) -> Explanation:
    """Which version of ``model`` scored ``topic[partition]@offset``, and which records
    (Kafka offsets, and the feature rows themselves) trained that version."""
    lake = Lake(root, storage_options=storage_options)
    what = f"a prediction of {topic}[{partition}]@{offset} by model {model!r}"
    try:
        preds = lake.scan(f"predictions.{model}")
    except TableNotInLake:
        raise ModelNotFound(what) from None
    hit = preds.filter(
        (pl.col("input_topic") == topic)
        & (pl.col("input_partition") == partition)
        & (pl.col("input_offset") == offset)
    ).collect()
    if hit.is_empty():
        raise ModelNotFound(what)
    prediction = hit.row(0, named=True)
    mv = ModelRegistry(root, storage_options=storage_options).load(
        model, version=prediction["model_version"]
    )
    fs = mv.lineage.get("feature_set", "")
    cond = pl.lit(False)
    for t, parts in mv.lineage_offsets.items():
        for p, (lo, hi) in parts.items():
            cond = cond | (
                (pl.col("_label_topic") == t)
                & (pl.col("_label_partition") == int(p))
                & pl.col("_label_offset").is_between(lo, hi)
            )
    cond = cond & pl.col("label").is_not_null()
    if mv.kind == "batch" and mv.event_time_from and mv.event_time_to:  # a window, not a stream
        window = (mv.event_time_from, mv.event_time_to)
        cond = cond & pl.col(mv.lineage["event_time"]).is_between(*window)
    rows = lake.scan(f"features.{fs}").filter(cond) if fs else pl.LazyFrame()
    return Explanation(prediction, mv.version, mv.kind, mv.lineage_offsets, fs, rows)
