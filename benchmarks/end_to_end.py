"""Benchmark: event produced -> visible in silver, and event -> prediction, at a steady rate.

One command, on the embedded broker and registry:

    .venv/bin/python benchmarks/end_to_end.py [--rate 50] [--seconds 20] [--history 3000]

Set-up (not measured): the demo's food-delivery app sends ``--history`` orders
with their deliveries; they are ingested and decoded, the ``order_eta``
features computed, and the ``eta`` model learned online and made champion.
Then the real ``eventlake ingest --topic order_placed --decode`` and
``eventlake score --model eta`` processes run while the app sends ``--rate``
orders a second for ``--seconds`` (Kafka timestamp = send time). In the same
run it records, per order, when
(a) a bare consumer of ``order_placed`` receives it (Kafka alone, the baseline),
(b) its row is visible in ``silver/order_placed-value`` (Delta log polled every 20 ms),
(c) its prediction arrives on the ``eta-predictions`` topic,
and prints p50/p90/p99/max of each, the ratios to (a), and both processes' peak RSS.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import polars as pl
from confluent_kafka import Consumer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from features import update_features  # noqa: E402
from ingest import EmbeddedBroker, Ingester, IngestOptions, consumer_config  # noqa: E402
from ingest.kafka import ensure_topic, wait_for_broker  # noqa: E402
from ingest.schema_registry_api import SchemaRegistryServer  # noqa: E402
from lake import Lake, SchemaStore  # noqa: E402
from lake.names import silver, value_subject  # noqa: E402
from orchestration.demo.definitions import DELIVERED_TOPIC, ETA, ORDERS_TOPIC  # noqa: E402
from orchestration.demo.simulation import EventPublisher, FoodDeliveryWorld  # noqa: E402
from training.evaluation import evaluate  # noqa: E402
from training.online import learn_online  # noqa: E402


def start(args: list[str], bootstrap: str, lake: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTLAKE_")}
    env.update(EVENTLAKE_KAFKA_BOOTSTRAP_SERVERS=bootstrap, EVENTLAKE_LAKE_ROOT=lake)
    return subprocess.Popen(
        [sys.executable, "-m", "orchestration", "--log-level", "WARNING", *args],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )


def stop(proc: subprocess.Popen[bytes]) -> float:
    """SIGTERM, wait, return peak RSS in MiB."""
    proc.send_signal(signal.SIGTERM)
    _, _, usage = os.wait4(proc.pid, 0)
    return usage.ru_maxrss / 1024


def pct(values: list[float]) -> str:
    a = np.array(values) * 1000
    return (
        f"p50 {np.percentile(a, 50):6.0f} ms  p90 {np.percentile(a, 90):6.0f} ms  "
        f"p99 {np.percentile(a, 99):6.0f} ms  max {a.max():6.0f} ms"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rate", type=float, default=50.0, help="orders per second")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--history", type=int, default=3000, help="orders before the measurement")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        bs, lake = broker.bootstrap_servers, os.path.join(tmp, "lake")
        admin = wait_for_broker(bs, wait_s=30)
        for topic in (ORDERS_TOPIC, DELIVERED_TOPIC):
            ensure_topic(admin, topic, bootstrap_servers=bs, create=True, partitions=2)
        world = FoodDeliveryWorld(orders_per_hour=120)
        with SchemaRegistryServer(SchemaStore.open(lake)) as registry:
            app = EventPublisher(bs, registry.url)
            for event in world.events(args.history):
                app.send(event)
            app.flush()
            for topic in (ORDERS_TOPIC, DELIVERED_TOPIC):
                Ingester(
                    IngestOptions(
                        bootstrap_servers=bs, topics=(topic,), lake=Lake(lake), decode_avro=True
                    )
                ).run(until_caught_up=True)
            update_features(Lake(lake), ETA.feature_set)
            version = learn_online(lake, ETA).version
            assert version is not None
            evaluate(lake, ETA, version.version)
            print(f"set-up: {args.history} orders of history; eta v{version.version} is champion")

            ingest = start(["ingest", "--topic", ORDERS_TOPIC, "--decode"], bs, lake)
            scorer = start(["score", "--model", "eta"], bs, lake)
            sent: dict[int, float] = {}
            kafka_at: dict[int, float] = {}
            pred_at: dict[int, float] = {}
            silver_at: dict[int, float] = {}
            done = threading.Event()

            def watch(topic: str, out: dict[int, float], key_of) -> None:  # type: ignore[no-untyped-def]
                c = Consumer(consumer_config(bs, f"bench-{topic}", {"auto.offset.reset": "latest"}))
                c.subscribe([topic])
                while not done.is_set():
                    for m in c.consume(500, 0.05):
                        if m.error() is None:
                            out.setdefault(key_of(m), time.time())
                c.close()

            def watch_silver() -> None:
                uri = Lake(lake).uri(silver(value_subject(ORDERS_TOPIC)))
                last = args.history
                while not done.is_set():
                    try:
                        ids = (
                            pl.scan_delta(uri)
                            .filter(pl.col("order_id") >= last)
                            .select("order_id")
                            .collect()["order_id"]
                            .to_list()
                        )
                    except Exception:
                        ids = []
                    now = time.time()
                    for i in ids:
                        silver_at.setdefault(i, now)
                    time.sleep(0.02)

            threads = [
                threading.Thread(
                    target=watch, args=(ORDERS_TOPIC, kafka_at, lambda m: int(m.key()))
                ),
                threading.Thread(
                    target=watch, args=("eta-predictions", pred_at, lambda m: int(m.key()))
                ),
                threading.Thread(target=watch_silver),
            ]
            for t in threads:
                t.start()
            time.sleep(8)  # the consumer groups join (about 3 s each)
            live = FoodDeliveryWorld(seed=99, orders_per_hour=3600 * args.rate)
            events = (e for e in live.events(10**9, first=args.history) if e.topic == ORDERS_TOPIC)
            t0 = time.time()
            n = 0
            while (elapsed := time.time() - t0) < args.seconds:
                while n < int(elapsed * args.rate):
                    e = next(events)
                    now = dt.datetime.now(dt.UTC)
                    app.send(dataclasses.replace(e, at=now), timestamp=now)
                    sent[e.value["order_id"]] = now.timestamp()
                    n += 1
                time.sleep(0.002)
            app.flush()
            deadline = time.time() + 30
            while time.time() < deadline and (len(pred_at) < n or len(silver_at) < n):
                time.sleep(0.1)
            done.set()
            for t in threads:
                t.join(10)
            rss_ingest, rss_score = stop(ingest), stop(scorer)

    steady = [i for i in sent if sent[i] - t0 >= 2]  # after the first 2 s
    print(f"{n} orders at {args.rate:g}/s for {args.seconds:g} s; steady state (after 2 s):")
    rows = [
        ("(a) produced -> bare consumer (Kafka alone)", kafka_at),
        ("(b) produced -> visible in silver", silver_at),
        ("(c) produced -> prediction on Kafka", pred_at),
    ]
    base = None
    for label, seen in rows:
        lat = [seen[i] - sent[i] for i in steady if i in seen]
        missing = len(steady) - len(lat)
        p50 = float(np.percentile(lat, 50)) if lat else float("nan")
        base = base or p50
        print(
            f"  {label:<46} {pct(lat)}  p50 x{p50 / base:5.1f}"
            + (f"  ({missing} missing)" if missing else "")
        )
    print(f"peak RSS: ingest {rss_ingest:,.0f} MiB, score {rss_score:,.0f} MiB")


if __name__ == "__main__":
    main()
