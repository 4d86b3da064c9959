"""Ingest metrics in the Prometheus text format (``prometheus-client``).

Rates (records/s, bytes/s) are the ``rate()`` of the counters, as Prometheus
expects; lag is a gauge per partition, commit latency a histogram.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

__all__ = ["IngestMetrics"]


class IngestMetrics:
    """The metrics of one ingester, in their own registry.

    >>> m = IngestMetrics()
    >>> m.records.labels(topic="t").inc(3)
    >>> m.registry.get_sample_value("eventlake_ingest_records_total", {"topic": "t"})
    3.0
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.records = Counter(
            "eventlake_ingest_records", "Records committed to bronze", ["topic"], registry=r
        )
        self.bytes = Counter(
            "eventlake_ingest_bytes",
            "Key and value bytes committed to bronze",
            ["topic"],
            registry=r,
        )
        self.batches = Counter("eventlake_ingest_batches", "Bronze commits", ["topic"], registry=r)
        self.errors = Counter(
            "eventlake_ingest_errors", "Errors seen by the ingester", ["topic", "kind"], registry=r
        )
        self.lag = Gauge(
            "eventlake_ingest_lag_records",
            "High watermark minus next offset to ingest",
            ["topic", "partition"],
            registry=r,
        )
        self.delta_version = Gauge(
            "eventlake_ingest_delta_version",
            "Delta version of the last bronze commit",
            ["topic"],
            registry=r,
        )
        self.commit_seconds = Histogram(
            "eventlake_ingest_commit_seconds",
            "Time to commit one micro-batch to Delta",
            ["topic"],
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.batch_latency_seconds = Histogram(
            "eventlake_ingest_batch_latency_seconds",
            "From the first record of a micro-batch being read to its Delta commit",
            ["topic"],
            registry=r,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )

        self.quality_records = Counter(
            "eventlake_quality_records",
            "Records an expectation judged",
            ["subject", "expectation"],
            registry=r,
        )
        self.quality_failed = Counter(
            "eventlake_quality_failed",
            "Records that failed an expectation (severity error: sent to dead letters)",
            ["subject", "expectation", "severity"],
            registry=r,
        )

    def serve(self, port: int, addr: str = "127.0.0.1") -> None:
        """Serve ``/metrics`` on ``addr:port`` from a daemon thread."""
        start_http_server(port, addr=addr, registry=self.registry)
