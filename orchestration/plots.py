"""The model's error over event time, with schema upgrades, drift and retraining marked.

One PNG per model in the lake's report folder (:func:`lake.names.reports_dir`): the
online model's error per stretch of rows (from its metric trace), the served predictions' error per
hour (predictions joined with labels, when there are any), each batch
version's holdout error at the end of its training window, and vertical marks
for the source's schema upgrades, drift detections and promotions.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt
import polars as pl

from lake import Lake, TableNotInLake
from lake.names import SCHEMA_VERSION, layer_of, reports_dir
from training import ModelRegistry, labeled_predictions

__all__ = ["inline_image", "metric_plot", "plot_path"]


def _chunk_error(trace: pl.DataFrame) -> pl.DataFrame:
    """Per-stretch error from a cumulative metric trace: (S_k - S_k-1) / (n_k - n_k-1)."""
    t = trace.sort("rows").with_columns((pl.col("value") * pl.col("rows")).alias("total"))
    return t.with_columns(
        ((pl.col("total") - pl.col("total").shift(1)) / (pl.col("rows") - pl.col("rows").shift(1)))
        .fill_null(pl.col("value"))
        .alias("error")
    ).filter(pl.col("rows").diff().fill_null(1) > 0)


def plot_path(lake: Lake, name: str) -> str:
    """Where :func:`metric_plot` draws model ``name``'s plot.

    >>> plot_path(Lake("/data/lake"), "eta")
    '/data/lake/_reports/eta_error.png'
    """
    return os.path.join(reports_dir(lake.root), f"{name}_error.png")


def inline_image(path: str, alt: str) -> str:
    """Markdown showing the PNG at ``path`` inline (a data URI, which Dagster's UI renders).

    >>> inline_image("/nonexistent.png", "plot")
    ''
    """
    if not os.path.exists(path):
        return ""
    with open(path, "rb") as f:
        return f"![{alt}](data:image/png;base64,{base64.b64encode(f.read()).decode()})"


def metric_plot(lake: Lake, name: str) -> str:
    """Draw the plot of model ``name`` (a local lake's report folder); return the PNG's path."""
    registry = ModelRegistry(lake)
    trace = registry.trace(name)
    versions = registry.versions(name)
    fig, ax = plt.subplots(figsize=(11, 4.8), dpi=90)
    online = trace.filter(pl.col("kind") == "online")
    metric = online["metric"][0] if online.height else "error"
    if online.height:
        err = _chunk_error(online)
        ax.plot(
            err["event_time"],
            err["error"],
            lw=1.2,
            color="#1f77b4",
            label=f"online model ({metric} per stretch)",
        )
    hourly = _hourly_error(lake, name)
    for role, style in _ROLE_STYLES.items():
        rows = hourly.filter(pl.col("role") == role) if hourly is not None else None
        if rows is not None and rows.height:
            ax.plot(rows["hour"], rows["error"], label=f"{role} predictions ({metric} per hour)",
                    **style)  # fmt: skip
    batch = trace.filter(pl.col("kind") == "batch")
    if batch.height:
        ax.scatter(
            batch["event_time"],
            batch["value"],
            marker="D",
            s=40,
            color="#ff7f0e",
            edgecolors="black",
            zorder=3,
            label="batch retrain (holdout error)",
        )
    ymax = ax.get_ylim()[1]
    for when, label in _schema_upgrades(lake, registry, name):
        ax.axvline(when, color="#9467bd", ls="--", lw=1)
        ax.text(when, ymax * 0.95, f" {label}", color="#9467bd", fontsize=8, va="top")
    drift = registry.drift(name)
    for i, when in enumerate(drift["event_time"].to_list()):
        ax.axvline(
            when, color="#d62728", ls=":", lw=1.5, label="drift detected" if i == 0 else None
        )
    promoted = registry.decisions(name).filter(pl.col("promoted"))
    ends = dict(
        zip(versions["version"].to_list(), versions["event_time_to"].to_list(), strict=True)
    )
    top = ax.get_xaxis_transform()  # x in data, y in axes fractions
    for i, v in enumerate(promoted["challenger"].to_list()):
        if ends.get(v) is not None:
            ax.axvline(ends[v], color="#8c564b", lw=0.8, alpha=0.5)
            ax.scatter(
                [ends[v]],
                [0.985],
                marker="v",
                s=60,
                color="#8c564b",
                transform=top,
                clip_on=False,
                zorder=4,
                label="champion promoted (version)" if i == 0 else None,
            )
            ax.text(ends[v], 0.955, f"v{v}", transform=top, color="#8c564b", fontsize=8,
                    ha="center", va="top")  # fmt: skip
    ax.set_title(f"{name}: error over event time")
    ax.set_xlabel("event time")
    ax.set_ylabel(metric)
    ax.legend(loc="upper left", fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    path = plot_path(lake, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


_ROLE_STYLES: dict[str, dict[str, Any]] = {
    "serving": {"lw": 1.2, "color": "#2ca02c"},
    "shadow": {"lw": 1.0, "color": "#7f7f7f", "ls": "--"},  # the challenger, not served
}


def _hourly_error(lake: Lake, name: str) -> pl.DataFrame | None:
    """Mean absolute error of the predictions per role and hour of event time."""
    versions = ModelRegistry(lake).versions(name)
    if versions.is_empty():
        return None
    feature_set = json.loads(versions["lineage"][-1]).get("feature_set")
    joined = labeled_predictions(lake, name, feature_set)
    if joined is None:
        return None
    return (
        joined.with_columns(
            pl.col("event_time").dt.truncate("1h").alias("hour"),
            (pl.col("prediction") - pl.col("label").cast(pl.Float64)).abs().alias("abs_error"),
        )
        .group_by("role", "hour")
        .agg(pl.col("abs_error").mean().alias("error"))
        .sort("role", "hour")
        .collect()
    )


def _schema_upgrades(lake: Lake, registry: ModelRegistry, name: str) -> list[tuple[Any, str]]:
    """When each later schema version of the model's source first appears (event time)."""
    versions = registry.versions(name)
    if versions.is_empty():
        return []
    lineage = json.loads(versions["lineage"][-1])
    source, event_time = lineage.get("source"), lineage.get("event_time")
    try:
        frame = lake.scan(source)
    except (TableNotInLake, TypeError):
        return []
    first = (
        frame.group_by(SCHEMA_VERSION).agg(pl.col(event_time).min()).sort(SCHEMA_VERSION).collect()
    )
    subject = layer_of(source)[1]
    return [(t, f"{subject} schema v{v}") for v, t in first.iter_rows() if v > 1]
