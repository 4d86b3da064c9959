"""Benchmark: event -> visible in bronze, at a steady produce rate.

One command, on the embedded broker:

    .venv/bin/python benchmarks/latency.py [--rate 5000] [--seconds 10]

A producer sends records at ``--rate`` per second (Kafka CreateTime = send
time) while the real `eventlake ingest` process runs with its default batch
bounds. In the same run, (a) a bare consumer records when each record reaches
it (the Kafka part of the latency) and (b) a reader polls the bronze table's
Delta log every 10 ms and records when each offset becomes visible there.
Prints p50/p90/p99/max of both, and the ingester's peak RSS.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from deltalake import DeltaTable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ingest_cli import start_ingest  # noqa: E402

from ingest import EmbeddedBroker, consumer_config  # noqa: E402
from lake import committed_offsets  # noqa: E402
from lake.names import bronze, table_uri  # noqa: E402


def produce_steadily(bs: str, topic: str, rate: int, seconds: float) -> int:
    p = Producer({"bootstrap.servers": bs, "linger.ms": 5, "enable.idempotence": True})
    n, t0 = 0, time.monotonic()
    while (elapsed := time.monotonic() - t0) < seconds:
        due = int(elapsed * rate)
        while n < due:
            p.produce(topic, key=str(n % 100).encode(), value=os.urandom(100))
            n += 1
        p.poll(0)
        time.sleep(0.001)
    p.flush(30)
    return n


def kafka_latencies(
    bs: str, topic: str, n: int, out: list[tuple[float, float]], ready: threading.Event
) -> None:
    c = Consumer(consumer_config(bs, "latency-bare", {"auto.offset.reset": "earliest"}))
    c.subscribe([topic], on_assign=lambda *_: ready.set())
    seen = 0
    while seen < n or not n:
        for m in c.consume(10_000, 0.2):
            ts = m.timestamp()[1]
            out.append((ts, time.time() * 1000 - ts))
            seen += 1
        if n == 0 and len(out) and ready.is_set() and seen >= len(out):
            pass
        if getattr(kafka_latencies, "stop", False):
            break
    c.close()


def percentiles(xs: list[float]) -> str:
    a = np.asarray(xs)
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return f"p50 {p50:6.0f} ms   p90 {p90:6.0f} ms   p99 {p99:6.0f} ms   max {a.max():6.0f} ms"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rate", type=int, default=5000, help="records per second")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--partitions", type=int, default=3)
    args = ap.parse_args()
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        bs, topic, lake = broker.bootstrap_servers, "latency", os.path.join(tmp, "lake")
        admin = AdminClient({"bootstrap.servers": bs})
        admin.create_topics([NewTopic(topic, args.partitions, 1)])[topic].result(timeout=10)
        ingest = start_ingest(topic, bootstrap=bs, lake=lake)
        kafka_lat: list[tuple[float, float]] = []
        ready = threading.Event()
        reader = threading.Thread(
            target=kafka_latencies, args=(bs, topic, 0, kafka_lat, ready), daemon=True
        )
        reader.start()
        # Wait for the ingester's table and the bare consumer's assignment.
        uri = table_uri(lake, bronze(topic))
        while not (os.path.exists(os.path.join(uri, "_delta_log")) and ready.is_set()):
            time.sleep(0.05)
        time.sleep(4)  # the ingester's group join
        visible: list[tuple[float, dict[int, int | None]]] = []
        stop = threading.Event()

        def poll() -> None:
            dt = DeltaTable(uri)
            while not stop.is_set():
                dt.update_incremental()
                visible.append(
                    (time.time() * 1000, committed_offsets(dt, topic, range(args.partitions)))
                )
                time.sleep(0.01)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        t_start = time.time() * 1000
        sent = produce_steadily(bs, topic, args.rate, args.seconds)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            last = visible[-1][1] if visible else {}
            if sum((v + 1) for v in last.values() if v is not None) >= sent:
                break
            time.sleep(0.05)
        stop.set()
        kafka_latencies.stop = True  # type: ignore[attr-defined]
        ingest.send_signal(signal.SIGTERM)
        _, _, usage = os.wait4(ingest.pid, 0)
        poller.join(5)
        reader.join(5)
        # When did each offset become visible? The first poll whose txn version covers it.
        rows = DeltaTable(uri).to_pyarrow_table(columns=["partition", "offset", "timestamp"])
        parts = rows.column("partition").to_numpy()
        offs = rows.column("offset").to_numpy()
        ts_ms = rows.column("timestamp").cast("int64").to_numpy() / 1000
        lat = np.empty(len(offs))
        times = np.array([t for t, _ in visible])
        for p in range(args.partitions):
            seen = np.array([(v.get(p) if v.get(p) is not None else -1) for _, v in visible])
            idx = parts == p
            first = np.searchsorted(np.maximum.accumulate(seen), offs[idx], side="left")
            lat[idx] = times[np.minimum(first, len(times) - 1)] - ts_ms[idx]
        print(
            f"{sent:,} records at {args.rate:,}/s for {args.seconds:.0f} s over "
            f"{args.partitions} partitions; default batch bounds (250 ms, 100k records)"
        )
        ka = np.array(kafka_lat)
        print(f"(a) produce -> bare consumer:     {percentiles(list(ka[:, 1]))}")
        print(f"(b) produce -> visible in bronze: {percentiles(list(lat))}")
        warm = t_start + 2000
        print("after the first 2 s:")
        print(f"(a) produce -> bare consumer:     {percentiles(list(ka[ka[:, 0] > warm, 1]))}")
        print(f"(b) produce -> visible in bronze: {percentiles(list(lat[ts_ms > warm]))}")
        print(
            f"rows in bronze: {len(offs):,}; peak RSS of the ingester "
            f"{usage.ru_maxrss / 1024:,.0f} MiB"
        )


if __name__ == "__main__":
    main()
