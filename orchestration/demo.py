"""``eventlake demo``: the whole product on the embedded default.

Until the Avro, features and Dagster parts exist, the demo is the foundation:
start the embedded broker, produce sample app events over three partitions,
ingest them exactly once into bronze, and show what landed.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow.compute as pc
from deltalake import DeltaTable

from ingest import (
    EmbeddedBroker,
    Ingester,
    IngestOptions,
    Record,
    ensure_topic,
    produce,
    wait_for_broker,
)
from lake import table_uri

__all__ = ["DemoResult", "run_demo", "sample_events"]

TOPIC = "app_events"
PARTITIONS = 3


def sample_events(n: int, *, seed: int = 7, start_ms: int | None = None) -> Iterator[Record]:
    """Yield ``n`` JSON app events (order_placed / order_delivered) keyed by user.

    >>> [json.loads(r.value)["event"] for r in sample_events(2, start_ms=0)]
    ['order_placed', 'order_placed']
    """
    rng = random.Random(seed)
    t0 = int(time.time() * 1000) if start_ms is None else start_ms
    for i in range(n):
        user = rng.randrange(1000)
        kind = "order_placed" if i % 3 != 2 else "order_delivered"
        body = {
            "event": kind,
            "order_id": i // 3 * 3,
            "user_id": user,
            "distance_km": round(rng.uniform(0.3, 12.0), 2),
            "ts": t0 + i,
        }
        yield Record(
            str(user).encode(),
            json.dumps(body).encode(),
            [("source", b"eventlake-demo")],
            timestamp_ms=t0 + i,
        )


@dataclass
class DemoResult:
    """What the demo produced and what landed in the lake."""

    bootstrap_servers: str
    produced: int
    bronze_rows: int
    per_partition: dict[int, tuple[int, int, int]]  # partition -> (rows, min, max offset)
    delta_version: int
    files: int
    produce_s: float
    ingest_s: float


def run_demo(
    lake_root: str,
    *,
    events: int = 50_000,
    bootstrap_servers: str | None = None,
    progress: bool = True,
) -> DemoResult:
    """Produce ``events`` sample events and ingest them into ``lake_root``.

    Starts the embedded broker unless ``bootstrap_servers`` is given.
    """

    def say(msg: str) -> None:
        if progress:
            print(msg, flush=True)

    broker = None if bootstrap_servers else EmbeddedBroker().start()
    try:
        bs = bootstrap_servers or broker.bootstrap_servers  # type: ignore[union-attr]
        say(f"[1/3] Kafka broker: {'embedded Tansu at ' if broker else ''}{bs}")
        t0 = time.monotonic()
        opts = IngestOptions(
            bootstrap_servers=bs,
            topic=TOPIC,
            lake_root=lake_root,
            group_id="eventlake-demo",
        )
        ensure_topic(
            wait_for_broker(bs), TOPIC, bootstrap_servers=bs, create=True, partitions=PARTITIONS
        )
        produced = produce(bs, TOPIC, sample_events(events))
        produce_s = time.monotonic() - t0
        say(
            f"[2/3] produced {produced:,} events to {TOPIC} ({PARTITIONS} partitions) "
            f"in {produce_s:.1f} s"
        )
        t1 = time.monotonic()
        summary = Ingester(opts).run(until_caught_up=True)
        ingest_s = time.monotonic() - t1
        say(
            f"[3/3] ingested {summary.records:,} new records in {summary.commits} commits "
            f"in {ingest_s:.1f} s"
        )
    finally:
        if broker is not None:
            broker.stop()
    dt = DeltaTable(table_uri(lake_root, "bronze", TOPIC))
    t = dt.to_pyarrow_table(columns=["partition", "offset"])
    per: dict[int, tuple[int, int, int]] = {}
    for p in sorted(set(t.column("partition").to_pylist())):
        offs = t.filter(pc.equal(t.column("partition"), p)).column("offset")
        mm = pc.min_max(offs)
        per[p] = (len(offs), mm["min"].as_py(), mm["max"].as_py())
    return DemoResult(
        bs, produced, t.num_rows, per, dt.version(), len(dt.file_uris()), produce_s, ingest_s
    )
