"""Connecting to Kafka: client configuration, waiting for a broker, topics.

Every Kafka client eventlake creates takes its configuration from
:func:`client_config` (consumers through :func:`consumer_config`): the bootstrap
servers, the connection's ``client_options`` (security protocol, SASL, TLS
files, anything else librdkafka takes, built from the settings by
``orchestration``) and what the client's role needs, which wins.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, ClusterMetadata, NewTopic

from ingest.errors import BrokerUnavailable, TopicNotFound

__all__ = [
    "client_config",
    "consumer_config",
    "ensure_topic",
    "high_watermarks",
    "matching_topics",
    "topic_id",
    "wait_for_broker",
]

log = logging.getLogger(__name__)

# Measured on the embedded broker: with the client defaults, rejoining a group a
# consumer just left can hang for tens of seconds; these make it about 3 s.
_CONSUMER_DEFAULTS: dict[str, Any] = {
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    # The lake says where to start; an offset Kafka no longer has is an error,
    # never a silent jump to the beginning or the end.
    "auto.offset.reset": "error",
    "partition.assignment.strategy": "cooperative-sticky",
    "session.timeout.ms": 6000,
    "heartbeat.interval.ms": 500,
    "max.poll.interval.ms": 30000,
    "fetch.wait.max.ms": 20,
    # librdkafka pauses a partition for fetch.queue.backoff.ms (default 1 s) once its
    # local queue is full; at ingest speed that pause was most of the run time.
    "fetch.queue.backoff.ms": 10,
    "queued.max.messages.kbytes": 65536,
    "isolation.level": "read_committed",
}


def client_config(
    bootstrap_servers: str,
    client_options: Mapping[str, Any] | None = None,
    role: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The configuration of any Kafka client: the connection's ``client_options``
    (security, credentials), then what the client's ``role`` needs.

    >>> c = client_config("b:9093", {"security.protocol": "SASL_SSL"}, {"linger.ms": 5})
    >>> c["bootstrap.servers"], c["security.protocol"], c["linger.ms"]
    ('b:9093', 'SASL_SSL', 5)
    """
    return {**(client_options or {}), **(role or {}), "bootstrap.servers": bootstrap_servers}


def consumer_config(
    bootstrap_servers: str,
    group_id: str,
    overrides: Mapping[str, Any] | None = None,
    error_cb: Callable[[KafkaError], None] | None = None,
    client_options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Return the confluent-kafka consumer configuration of an ingester.

    ``overrides`` (librdkafka property names) win over the defaults, except the
    two that exactly-once depends on; ``client_options`` are the connection's
    (see :func:`client_config`).

    >>> c = consumer_config("b:9092", "g", {"session.timeout.ms": 10000})
    >>> c["session.timeout.ms"], c["enable.auto.commit"]
    (10000, False)
    >>> consumer_config("b:9092", "g", {"enable.auto.commit": True})
    Traceback (most recent call last):
    ...
    ValueError: consumer option 'enable.auto.commit' cannot be changed: ...
    """
    overrides = dict(overrides or {})
    for fixed in ("enable.auto.commit", "enable.auto.offset.store"):
        if fixed in overrides and overrides[fixed] not in (False, "false"):
            raise ValueError(
                f"consumer option {fixed!r} cannot be changed: the lake stores the offsets "
                "(exactly-once); remove it from the consumer options"
            )
    config = client_config(
        bootstrap_servers,
        client_options,
        {**_CONSUMER_DEFAULTS, **overrides, "group.id": group_id},
    )
    if error_cb is not None:
        config["error_cb"] = error_cb
    return config


def wait_for_broker(
    bootstrap_servers: str,
    *,
    wait_s: float = 60.0,
    client_options: Mapping[str, Any] | None = None,
) -> AdminClient:
    """Return an admin client once a broker answers, retrying with backoff.

    Each failed attempt is logged with the next delay (0.25 s doubling to 5 s);
    raises :class:`BrokerUnavailable` after ``wait_s`` seconds.
    """
    role = {"logger": logging.getLogger("librdkafka.admin")}
    admin = AdminClient(client_config(bootstrap_servers, client_options, role))
    deadline = time.monotonic() + wait_s
    delay, attempt = 0.25, 0
    while True:
        attempt += 1
        try:
            admin.list_topics(timeout=min(1.0, max(0.2, deadline - time.monotonic())))
            if attempt > 1:
                log.info(
                    "Kafka broker at %s answered after %d attempts", bootstrap_servers, attempt
                )
            return admin
        except KafkaException as e:
            last = str(e.args[0]) if e.args else repr(e)
        left = deadline - time.monotonic()
        if left <= 0:
            raise BrokerUnavailable(bootstrap_servers, wait_s, last)
        pause = min(delay, left)
        log.warning(
            "Kafka broker at %s not reachable (attempt %d: %s); retrying in %.2f s",
            bootstrap_servers,
            attempt,
            last,
            pause,
        )
        time.sleep(pause)
        delay = min(delay * 2, 5.0)


def ensure_topic(
    admin: AdminClient, topic: str, *, bootstrap_servers: str, create: bool, partitions: int = 1
) -> int:
    """Return the partition count of ``topic``, creating it first if ``create``.

    Raises :class:`TopicNotFound` if it is missing and ``create`` is False.
    """
    meta = _topic_metadata(admin, topic)
    if meta is None:
        if not create:
            raise TopicNotFound(topic, bootstrap_servers)
        futures = admin.create_topics([NewTopic(topic, partitions, 1)])
        try:
            futures[topic].result(timeout=30)
            log.info("created topic %s with %d partitions", topic, partitions)
        except KafkaException as e:
            if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
        meta = _wait_for_topic(admin, topic)
    return meta


def matching_topics(admin: AdminClient, pattern: str) -> dict[str, int]:
    """The partition count of every topic whose name ``pattern`` matches, as
    librdkafka matches a ``^``-prefixed subscription (a search; internal ``__``
    topics excluded).

    >>> matching_topics(admin, r"^orders\\.")  # doctest: +SKIP
    {'orders.created': 3, 'orders.paid': 3}
    """
    regex = re.compile(pattern)
    md: ClusterMetadata = admin.list_topics(timeout=10)
    return {
        name: len(t.partitions)
        for name, t in sorted(md.topics.items())
        if regex.search(name) and not name.startswith("__") and t.error is None and t.partitions
    }


def _topic_metadata(admin: AdminClient, topic: str) -> int | None:
    md: ClusterMetadata = admin.list_topics(timeout=10)
    t = md.topics.get(topic)
    if t is None or t.error is not None or not t.partitions:
        return None
    return len(t.partitions)


def _wait_for_topic(admin: AdminClient, topic: str, timeout_s: float = 10.0) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        n = _topic_metadata(admin, topic)
        if n is not None:
            return n
        time.sleep(0.1)
    raise KafkaException(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART, f"{topic} not visible"))


def high_watermarks(
    bootstrap_servers: str,
    topic: str,
    partitions: Iterable[int],
    *,
    timeout_s: float = 10.0,
    isolation_level: str = "read_committed",
    client_options: Mapping[str, Any] | None = None,
) -> dict[int, tuple[int, int]]:
    """Return ``{partition: (low, high)}`` watermarks of ``topic`` as of now.

    The high watermark is the one a fetch response reports, not only ListOffsets':
    some Kafka-compatible brokers (Tansu 0.6) answer ListOffsets with the base
    offset of the last record batch + 1, which would end a catch-up run a batch
    early. So each non-empty partition is fetched once from just below the listed
    end, and the larger of the two answers is kept.
    """
    role = {
        "group.id": "eventlake-watermarks",
        "enable.auto.commit": False,
        "isolation.level": isolation_level,
        "logger": logging.getLogger("librdkafka.watermarks"),
    }
    consumer = Consumer(client_config(bootstrap_servers, client_options, role))
    try:
        marks = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)
            for p in partitions
        }
        probe = [
            TopicPartition(topic, p, high - 1) for p, (low, high) in marks.items() if high > low
        ]
        if not probe:
            return marks
        consumer.assign(probe)
        pending = {tp.partition for tp in probe}
        deadline = time.monotonic() + timeout_s
        while pending and time.monotonic() < deadline:
            consumer.consume(num_messages=1000, timeout=0.1)
            for p in list(pending):
                _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), cached=True)
                if high >= 0:
                    marks[p] = (marks[p][0], max(marks[p][1], high))
                    pending.discard(p)
        if pending:
            raise KafkaException(
                KafkaError(
                    KafkaError._TIMED_OUT, f"no fetch response for {topic} {sorted(pending)}"
                )
            )
        return marks
    finally:
        consumer.close()


def topic_id(admin: AdminClient, topic: str) -> str | None:
    """Return Kafka's id of ``topic`` (new each time the topic is created), or None
    when the broker does not report topic ids.
    """
    try:
        description = admin.describe_topics(TopicCollection([topic]))[topic].result(timeout=10)
    except Exception as e:
        log.info("broker reports no topic id for %s (%s); recreation cannot be detected", topic, e)
        return None
    tid = description.topic_id
    return str(tid) if tid is not None else None
