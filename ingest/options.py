"""Options of one ingest run, passed explicitly by the caller."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ingest.kafka import consumer_config
from lake import Lake, validate_name
from lake.names import SubjectStrategy

__all__ = ["IngestOptions"]


@dataclass(frozen=True, kw_only=True)
class IngestOptions:
    """Everything an ingester needs; built by ``orchestration`` from the settings.

    ``client_options`` reach every Kafka client of the run (security, credentials:
    see :func:`ingest.kafka.client_config`); ``consumer_options`` only its consumer.
    A micro-batch is committed when it holds ``batch_max_records`` records or
    ``batch_max_bytes`` bytes of values, or when its oldest record has waited
    ``batch_max_latency_s``, whichever comes first. Every ``maintain_every``
    commits the tables are compacted on a background thread (0: never).

    >>> IngestOptions(bootstrap_servers="127.0.0.1:9092", topic="orders",
    ...               lake=Lake("./lake")).group_id
    'eventlake-ingest'
    """

    bootstrap_servers: str
    topic: str
    lake: Lake
    group_id: str = "eventlake-ingest"
    consumer_options: Mapping[str, str | int | float | bool] = field(default_factory=dict)
    client_options: Mapping[str, str | int | float | bool] = field(default_factory=dict)
    batch_max_records: int = 100_000
    batch_max_bytes: int = 32 * 1024 * 1024
    batch_max_latency_s: float = 0.25
    broker_wait_s: float = 60.0
    create_topic: bool = False
    topic_partitions: int = 1
    decode_avro: bool = False
    registry_url: str | None = None
    subject_strategy: SubjectStrategy = "topic"
    maintain_every: int = 1000  # bronze commits between compactions; 0 = never

    def __post_init__(self) -> None:
        validate_name(self.topic)  # it becomes the path bronze/<topic>
        consumer_config(self.bootstrap_servers, self.group_id, self.consumer_options)
        for name in ("batch_max_records", "batch_max_bytes", "topic_partitions"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.maintain_every < 0:
            raise ValueError(f"maintain_every must be 0 or more, got {self.maintain_every}")
        if self.batch_max_latency_s <= 0:
            raise ValueError(
                f"batch_max_latency_s must be positive, got {self.batch_max_latency_s}"
            )
