"""The demo's simulated food-delivery app: orders now, deliveries minutes later.

Each order emits ``order_placed`` (what is known at order time) and, after its
delivery time in event time, ``order_delivered`` (the label). At ``upgrade_at``
the app starts writing ``order_placed`` with schema v2 (courier load, weather);
at ``drift_at`` the world changes: every kilometre and every rush hour costs
more, and a loaded courier fleet slows things down. A few popular restaurants
take most orders, and every order a kitchen took in the 30 minutes before
delays the next one.

>>> world = FoodDeliveryWorld(seed=1)
>>> events = list(world.events(3))
>>> [(e.topic.removeprefix("order_"), e.value["order_id"]) for e in events]
[('placed', 0), ('placed', 1), ('placed', 2), ('delivered', 0), ('delivered', 1), ('delivered', 2)]
"""

from __future__ import annotations

import collections
import datetime as dt
import heapq
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from ingest import client_config
from orchestration.demo.definitions import (
    DELIVERED,
    DELIVERED_TOPIC,
    ORDERS_TOPIC,
    PLACED_V1,
    PLACED_V2,
)

__all__ = ["KITCHEN_WINDOW", "Event", "EventPublisher", "FoodDeliveryWorld"]

KITCHEN_WINDOW = dt.timedelta(minutes=30)  # how long an order keeps a kitchen busy


@dataclass(frozen=True, order=True)
class Event:
    """One event of the app, in event-time order."""

    at: dt.datetime
    topic: str
    version: int  # the schema version it is written with (1 or 2)
    value: dict[str, Any] = field(compare=False)  # ties in time are broken by key
    key: bytes = b""


class FoodDeliveryWorld:
    """Orders at ``orders_per_hour`` from ``start``; deterministic for a seed."""

    def __init__(
        self,
        *,
        seed: int = 7,
        start: dt.datetime = dt.datetime(2026, 11, 1, 8, tzinfo=dt.UTC),
        orders_per_hour: float = 30.0,
        upgrade_after: int | None = None,  # orders before the v2 upgrade
        drift_after: int | None = None,  # orders before the world changes
        users: int = 400,
        restaurants: int = 40,
    ) -> None:
        self.rng = random.Random(seed)
        self.start = start
        self.gap_s = 3600.0 / orders_per_hour
        self.upgrade_after = upgrade_after
        self.drift_after = drift_after
        self.users = users
        self.restaurants = restaurants
        # A few popular restaurants take most orders (Zipf-like), so kitchens get busy.
        self._weights = [1.0 / (r + 1) for r in range(restaurants)]
        self._recent: dict[int, collections.deque[dt.datetime]] = {}

    @property
    def drift_at(self) -> dt.datetime | None:
        """When the world changes: the earliest placement of the first drifted order.

        >>> FoodDeliveryWorld(orders_per_hour=60, drift_after=30).drift_at.isoformat()
        '2026-11-01T08:30:00+00:00'
        """
        if self.drift_after is None:
            return None
        return self.start + dt.timedelta(seconds=self.drift_after * self.gap_s)

    def minutes(
        self, i: int, distance: float, items: int, hour: int, load: float, kitchen: int = 0
    ) -> float:
        """Delivery minutes of order ``i``: the world's rule, before or after the drift.
        ``kitchen`` is how many orders the restaurant took in the 30 minutes before."""
        rush = hour in (12, 13, 19, 20)
        noise = self.rng.gauss(0, 2.0)
        queue = 2.5 * kitchen  # each order ahead in the kitchen delays this one
        if self.drift_after is not None and i >= self.drift_after:
            return (
                18 + 6.5 * distance + 1.0 * items + (14 if rush else 0) + 20 * load + queue + noise
            )
        return 12 + 3.0 * distance + 0.5 * items + (6 if rush else 0) + 4 * load + queue + noise

    def _kitchen(self, restaurant: int, at: dt.datetime) -> int:
        """Orders the restaurant took in ``[at - 30 min, at)``; remembers this one."""
        recent = self._recent.setdefault(restaurant, collections.deque())
        while recent and recent[0] < at - KITCHEN_WINDOW:
            recent.popleft()
        busy = sum(1 for t in recent if t < at)
        recent.append(at)
        return busy

    def events(self, n_orders: int, *, first: int = 0) -> Iterator[Event]:
        """Events of orders ``first .. first + n_orders - 1`` in event-time order."""
        pending: list[Event] = []
        for i in range(first, first + n_orders):
            at = self.start + dt.timedelta(seconds=i * self.gap_s + self.rng.uniform(0, self.gap_s))
            while pending and pending[0].at <= at:
                yield heapq.heappop(pending)
            v2 = self.upgrade_after is not None and i >= self.upgrade_after
            load = round(self.rng.betavariate(2, 3), 3)
            distance = round(self.rng.uniform(0.3, 9.0), 2)
            items = self.rng.randint(1, 6)
            restaurant = self.rng.choices(range(self.restaurants), self._weights)[0]
            kitchen = self._kitchen(restaurant, at)
            placed = {
                "order_id": i,
                "user_id": self.rng.randrange(self.users),
                "restaurant_id": restaurant,
                "distance_km": distance,
                "items": items,
                "placed_at": at,
            }
            if v2:
                placed |= {"courier_load": load, "weather": self.rng.choice(["clear", "rain"])}
            yield Event(at, ORDERS_TOPIC, 2 if v2 else 1, placed, str(i).encode())
            minutes = max(
                5.0, self.minutes(i, distance, items, at.hour, load if v2 else 0.5, kitchen)
            )
            done = at + dt.timedelta(minutes=minutes)
            delivered = {"order_id": i, "delivered_at": done, "delivery_minutes": round(minutes, 2)}
            heapq.heappush(pending, Event(done, DELIVERED_TOPIC, 1, delivered, str(i).encode()))
        while pending:
            yield heapq.heappop(pending)


class EventPublisher:
    """Sends events as the app would: Confluent's AvroSerializer, schemas registered
    (auto-registration) through a Schema Registry REST API, Kafka timestamp = event time.
    ``produced`` holds the last acknowledged offset of every topic-partition.
    """

    def __init__(self, bootstrap_servers: str, registry_url: str) -> None:
        client = SchemaRegistryClient({"url": registry_url})
        self._serializers = {
            (ORDERS_TOPIC, 1): AvroSerializer(client, PLACED_V1),
            (ORDERS_TOPIC, 2): AvroSerializer(client, PLACED_V2),
            (DELIVERED_TOPIC, 1): AvroSerializer(client, DELIVERED),
        }
        role = {"linger.ms": 20, "enable.idempotence": True}  # the demo's own embedded broker
        self._producer = Producer(client_config(bootstrap_servers, None, role))
        self.sent: dict[str, int] = {}
        self.produced: dict[str, dict[int, int]] = {}  # topic -> partition -> last offset

    def _delivered(self, err: Any, msg: Any) -> None:
        if err is None:
            last = self.produced.setdefault(msg.topic(), {})
            last[msg.partition()] = max(last.get(msg.partition(), -1), msg.offset())

    def encode(self, event: Event) -> bytes:
        """The Confluent-framed Avro value of ``event``."""
        ser = self._serializers[(event.topic, event.version)]
        value: bytes = ser(event.value, SerializationContext(event.topic, MessageField.VALUE))
        return value

    def send(
        self, event: Event, *, timestamp: dt.datetime | None = None, value: bytes | None = None
    ) -> None:
        """Serialize and send one event (``timestamp`` overrides its event time; ``value``:
        its :meth:`encode` made earlier, so a load generator can send at a high rate)."""
        value = value if value is not None else self.encode(event)
        when = timestamp or event.at
        while True:
            try:
                self._producer.produce(
                    event.topic,
                    key=event.key,
                    value=value,
                    timestamp=int(when.timestamp() * 1000),
                    on_delivery=self._delivered,
                )
                break
            except BufferError:
                self._producer.poll(0.05)
        self._producer.poll(0)
        self.sent[event.topic] = self.sent.get(event.topic, 0) + 1

    def flush(self, timeout_s: float = 30.0) -> None:
        """Wait until every event sent is acknowledged."""
        left = self._producer.flush(timeout_s)
        if left:
            raise RuntimeError(f"{left} events were not acknowledged within {timeout_s} s")
