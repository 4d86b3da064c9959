"""Options of one ingest run, passed explicitly by the caller."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from ingest.expectations import Expectation
from ingest.kafka import consumer_config
from lake import Lake, validate_name
from lake.names import SubjectStrategy

__all__ = ["IngestOptions"]


@dataclass(frozen=True, kw_only=True)
class IngestOptions:
    """Everything an ingester needs; built by ``orchestration`` from the settings.

    ``topics`` are ingested by name, and every topic whose name matches
    ``topic_pattern`` (a regular expression starting with ``^``, as librdkafka
    subscribes), including topics created later: the consumer looks for them
    every ``pattern_refresh_s`` seconds. Each topic has its own ``bronze/<topic>``.
    ``client_options`` reach every Kafka client of the run (security, credentials:
    see :func:`ingest.kafka.client_config`); ``consumer_options`` only its consumer.
    A micro-batch is committed when it holds ``batch_max_records`` records or
    ``batch_max_bytes`` bytes of values, or when its oldest record has waited
    ``batch_max_latency_s``, whichever comes first. Every ``maintain_every``
    commits the tables are compacted on a background thread (0: never).
    ``expectations`` are judged on every decoded batch (:mod:`ingest.expectations`).

    >>> IngestOptions(bootstrap_servers="127.0.0.1:9092", topics=("orders",),
    ...               topic_pattern=r"^payments\\.", lake=Lake("./lake")).subscription
    ['orders', '^payments\\\\.']
    """

    bootstrap_servers: str
    topics: tuple[str, ...] = ()
    topic_pattern: str | None = None
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
    pattern_refresh_s: float = 10.0
    expectations: tuple[Expectation, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.topics, str):
            raise ValueError(f"topics is a tuple of names: write topics=({self.topics!r},)")
        object.__setattr__(self, "topics", tuple(dict.fromkeys(self.topics)))
        if not self.topics and self.topic_pattern is None:
            raise ValueError("name at least one topic or a topic pattern to ingest")
        for topic in self.topics:
            validate_name(topic)  # it becomes the path bronze/<topic>
        if self.topic_pattern is not None:
            _check_pattern(self.topic_pattern)
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

    @property
    def subscription(self) -> list[str]:
        """What the consumer subscribes to: the topics, then the pattern."""
        return [*self.topics, *([self.topic_pattern] if self.topic_pattern else [])]

    def consumer_config_overrides(self) -> dict[str, str | int | float | bool]:
        """``consumer_options``, plus how often a pattern looks for new topics."""
        out = dict(self.consumer_options)
        if self.topic_pattern is not None:
            out.setdefault("topic.metadata.refresh.interval.ms", int(self.pattern_refresh_s * 1000))
        return out


def _check_pattern(pattern: str) -> None:
    if not pattern.startswith("^"):
        raise ValueError(
            f"topic pattern {pattern!r} must start with '^' (librdkafka reads only such "
            f"subscriptions as regular expressions), e.g. '^{pattern}'"
        )
    try:
        re.compile(pattern)
    except re.error as e:
        raise ValueError(f"topic pattern {pattern!r} is not a regular expression: {e}") from None
