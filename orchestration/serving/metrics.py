"""Serving metrics in the Prometheus text format, on the conventions of ingest's
(:class:`ingest.IngestMetrics`): ``eventlake_<part>_<what>``, counters as ``_total``,
latencies as histograms in seconds, one registry per process."""

from __future__ import annotations

from collections import Counter as Tally
from typing import Any

import polars as pl
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

__all__ = ["ServingMetrics"]


class ServingMetrics:
    """Predictions, latency, errors and model reloads of the scoring front doors.

    >>> m = ServingMetrics()
    >>> m.count(pl.DataFrame({"model": ["eta"], "model_version": [3], "role": ["shadow"],
    ...                       "front_door": ["http"]}), 0.002)
    >>> m.registry.get_sample_value("eventlake_serving_predictions_total",
    ...     {"model": "eta", "version": "3", "role": "shadow", "front_door": "http"})
    1.0
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = r = registry or CollectorRegistry()
        self.predictions = Counter(
            "eventlake_serving_predictions",
            "Predictions made, per model version and launch role",
            ["model", "version", "role", "front_door"],
            registry=r,
        )
        self.latency_seconds = Histogram(
            "eventlake_serving_latency_seconds",
            "Time to score one request or micro-batch (features and every role)",
            ["model", "front_door"],
            registry=r,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5),
        )
        self.errors = Counter(
            "eventlake_serving_errors",
            "Requests or batches that failed, by kind",
            ["model", "front_door", "kind"],
            registry=r,
        )
        self.reloads = Counter(
            "eventlake_serving_model_reloads",
            "Model versions swapped in without a restart (alias moves, launches)",
            ["model", "front_door"],
            registry=r,
        )

    def count(self, predictions: pl.DataFrame | list[dict[str, Any]], seconds: float) -> None:
        """Count a scored request or batch (its prediction records) and its latency."""
        cols = ("model", "model_version", "role", "front_door")
        if isinstance(predictions, pl.DataFrame):
            grouped = predictions.group_by(*cols).len().rows()
            groups = Tally({tuple(r[:4]): r[4] for r in grouped})
        else:
            groups = Tally(tuple(r[c] for c in cols) for r in predictions)
        for (model, version, role, door), n in groups.items():
            self.predictions.labels(model, str(version), role, door).inc(n)
        if groups:
            model, _, _, door = next(iter(groups))
            self.latency_seconds.labels(model, door).observe(seconds)

    def serve(self, port: int, addr: str = "127.0.0.1") -> None:
        """Serve ``/metrics`` on ``addr:port`` from a daemon thread."""
        start_http_server(port, addr=addr, registry=self.registry)
