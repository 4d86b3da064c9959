"""Producing events the way eventlake's producers do: Confluent-framed Avro.

An :class:`EventProducer` validates each event against the newest schema of its
subject (eventlake's own registry, or a Confluent-compatible one by URL),
frames it (magic byte 0, the 4-byte schema id, the Avro body) and produces it
to Kafka, so it lands in bronze and silver like every other event.
"""

from __future__ import annotations

import io
import json
import struct
import threading
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import fastavro
from confluent_kafka import KafkaException, Producer
from fastavro.validation import ValidationError, validate

from ingest.errors import InvalidEvent
from ingest.kafka import client_config
from lake import SchemaNotFound, SchemaStore

__all__ = ["EventProducer", "frame"]


def frame(schema_id: int, body: bytes) -> bytes:
    """The Confluent wire format: magic byte 0, big-endian schema id, the Avro body.

    >>> frame(7, b"x")
    b'\\x00\\x00\\x00\\x00\\x07x'
    """
    return struct.pack(">bI", 0, schema_id) + body


@lru_cache(maxsize=256)
def _parsed(schema: str) -> Any:
    return fastavro.parse_schema(json.loads(schema))


class EventProducer:
    """Validate, frame and produce events of a subject.

    >>> p = EventProducer(broker.bootstrap_servers, SchemaStore.open(lake))  # doctest: +SKIP
    >>> p.send("orders", "orders-value", [{"order_id": 1}], key_field="order_id")  # doctest: +SKIP
    [(0, 41)]
    """

    def __init__(
        self,
        bootstrap_servers: str,
        store: SchemaStore,
        registry_url: str | None = None,
        *,
        delivery_timeout_s: float = 10.0,
        client_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.store = store
        self.registry_url = registry_url
        self.delivery_timeout_s = delivery_timeout_s
        role = {"enable.idempotence": True, "linger.ms": 1}
        self._producer = Producer(client_config(bootstrap_servers, client_options, role))
        self._lock = threading.Lock()

    def schema(self, subject: str) -> tuple[int, str]:
        """``(schema id, schema text)`` of the newest version of ``subject``; raises
        :class:`lake.SchemaNotFound`."""
        if self.registry_url is None:
            r = self.store.get(subject)
            return r.id, self.store.resolved(r.id)
        from confluent_kafka.schema_registry import SchemaRegistryClient
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        try:
            latest = SchemaRegistryClient({"url": self.registry_url}).get_latest_version(subject)
        except SchemaRegistryError as e:
            raise SchemaNotFound(f"subject {subject!r} ({e})") from None
        return int(latest.schema_id or 0), str(latest.schema.schema_str)

    def send(
        self,
        topic: str,
        subject: str,
        events: Sequence[Mapping[str, Any]],
        *,
        key_field: str | None = None,
    ) -> list[tuple[int, int]]:
        """Produce ``events`` (all validated first: one bad event sends none); wait for the
        acks and return each one's ``(partition, offset)``. Raises :class:`InvalidEvent`."""
        schema_id, text = self.schema(subject)
        parsed = _parsed(text)
        names = {f["name"] for f in parsed.get("fields", [])}
        if key_field is not None and key_field not in names:
            raise InvalidEvent(-1, key_field, f"key_field is not a field of {subject}")
        bodies = []
        for i, event in enumerate(events):
            unknown = sorted(set(event) - names)
            if unknown:
                raise InvalidEvent(i, unknown[0], f"not a field of {subject}")
            try:
                validate(dict(event), parsed, raise_errors=True)
            except ValidationError as e:
                raise InvalidEvent(i, _field(e), "; ".join(map(str, e.errors))) from None
            buf = io.BytesIO()
            fastavro.schemaless_writer(buf, parsed, dict(event))
            bodies.append(frame(schema_id, buf.getvalue()))
        delivered: list[tuple[int, int] | None] = [None] * len(bodies)
        failures: list[str] = []

        def ack(i: int) -> Any:
            def on_delivery(err: Any, msg: Any) -> None:
                if err is not None:
                    failures.append(str(err))
                else:
                    delivered[i] = (msg.partition(), msg.offset())

            return on_delivery

        with self._lock:
            for i, (event, body) in enumerate(zip(events, bodies, strict=True)):
                key = None if key_field is None else str(event.get(key_field)).encode()
                self._producer.produce(topic, key=key, value=body, on_delivery=ack(i))
            self._producer.flush(self.delivery_timeout_s)
        if failures or any(d is None for d in delivered):
            raise KafkaException(failures[0] if failures else "delivery timed out")
        return [d for d in delivered if d is not None]


def _field(e: ValidationError) -> str:
    """The field a fastavro validation error is about (``Record.field`` -> ``field``)."""
    for err in e.errors:
        field = getattr(err, "field", None)
        if field:
            return str(field).rsplit(".", 1)[-1]
    return "?"
