"""Producing records to Kafka (samples, tests, and later re-publishing)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from confluent_kafka import KafkaException, Producer

from ingest.kafka import client_config

__all__ = ["Record", "produce"]


class Record(NamedTuple):
    """One record to produce: ``partition`` None lets the key choose it."""

    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] | None = None
    partition: int | None = None
    timestamp_ms: int | None = None


def produce(
    bootstrap_servers: str,
    topic: str,
    records: Iterable[Record],
    *,
    linger_ms: int = 20,
    client_options: Mapping[str, Any] | None = None,
) -> int:
    """Produce ``records`` with an idempotent producer, wait for every ack, return the count.
    ``client_options`` are the connection's (see :func:`ingest.kafka.client_config`).

    Raises :class:`confluent_kafka.KafkaException` if any record was not acknowledged.

    >>> produce(broker.bootstrap_servers, "orders", [Record(b"k", b"v")])  # doctest: +SKIP
    1
    """
    role = {"enable.idempotence": True, "linger.ms": linger_ms, "compression.type": "none"}
    producer = Producer(client_config(bootstrap_servers, client_options, role))
    failures: list[str] = []

    def on_delivery(err: object, _msg: object) -> None:
        if err is not None:
            failures.append(str(err))

    n = 0
    for r in records:
        kwargs: dict[str, object] = {"key": r.key, "value": r.value, "on_delivery": on_delivery}
        if r.headers:
            kwargs["headers"] = r.headers
        if r.partition is not None:
            kwargs["partition"] = r.partition
        if r.timestamp_ms is not None:
            kwargs["timestamp"] = r.timestamp_ms
        while True:
            try:
                producer.produce(topic, **kwargs)  # type: ignore[arg-type]
                break
            except BufferError:
                producer.poll(0.05)
        n += 1
    remaining = producer.flush(60)
    if remaining or failures:
        raise KafkaException(
            f"{remaining} records unacknowledged, {len(failures)} failed: {failures[:3]}"
        )
    return n
