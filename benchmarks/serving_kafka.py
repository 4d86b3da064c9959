"""Benchmark: event -> prediction through `eventlake score`, against Kafka alone.

One command, on the embedded broker and registry:

    .venv/bin/python benchmarks/serving_kafka.py [--rates 50 500 5000] [--seconds 8]

Set-up (not measured): see ``serving_setup.demo_lake``. Then the real
``eventlake score --model eta`` process runs (ingest's consume loop, the pure
decoder, online features, the champion, predictions exactly once to the lake
and to ``eta-predictions``) while the app sends orders at each rate in turn
(Kafka timestamp = send time). Per order, the same run records when
(a) a bare consumer of ``order_placed`` receives it (Kafka alone, the baseline) and
(b) its prediction arrives on ``eta-predictions``;
and prints p50/p99/max of each per rate (after each phase's first second), the
ratio b/a, and the scorer's peak RSS.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

from confluent_kafka import Consumer

sys.path.insert(0, str(Path(__file__).resolve().parent))

from serving_setup import ROOT, demo_lake, own_peak_rss_mib, pct, peak_rss_mib, start, stop

from ingest import EmbeddedBroker, consumer_config, ensure_topic, wait_for_broker
from ingest.schema_registry_api import SchemaRegistryServer
from lake import Lake, SchemaStore
from orchestration.demo.definitions import ORDERS_TOPIC
from orchestration.demo.simulation import EventPublisher, FoodDeliveryWorld


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rates", type=float, nargs="+", default=[50.0, 500.0, 5000.0])
    ap.add_argument("--seconds", type=float, default=8.0, help="per rate")
    ap.add_argument("--history", type=int, default=3000)
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        bs, lake = broker.bootstrap_servers, os.path.join(tmp, "lake")
        with SchemaRegistryServer(SchemaStore.open(Lake(lake))) as registry:
            demo_lake(bs, lake, registry.url, args.history)
            env = {"EVENTLAKE_LAKE_ROOT": lake, "EVENTLAKE_KAFKA_BOOTSTRAP_SERVERS": bs,
                   "PYTHONPATH": str(ROOT)}  # fmt: skip
            admin = wait_for_broker(bs, wait_s=30)  # the watcher subscribes before the scorer
            ensure_topic(admin, "eta-predictions", bootstrap_servers=bs, create=True, partitions=2)
            scorer = start(["score", "--model", "eta"], env)
            kafka_at: dict[int, float] = {}
            pred_at: dict[int, float] = {}
            done = threading.Event()

            def watch(topic: str, out: dict[int, float]) -> None:
                c = Consumer(consumer_config(bs, f"bench-{topic}", {"auto.offset.reset": "latest"}))
                c.subscribe([topic])
                while not done.is_set():
                    for m in c.consume(1000, 0.05):
                        if m.error() is None:
                            out.setdefault(int(m.key()), time.time())
                c.close()

            threads = [
                threading.Thread(target=watch, args=(ORDERS_TOPIC, kafka_at), daemon=True),
                threading.Thread(target=watch, args=("eta-predictions", pred_at), daemon=True),
            ]
            for t in threads:
                t.start()
            time.sleep(8)  # the consumer groups join (about 3 s each)
            app = EventPublisher(bs, registry.url)
            first = args.history
            for rate in args.rates:
                # Encoded before the clock starts (Avro in Python is slower than 5,000/s
                # beside the watchers); event time = the planned send time.
                live = FoodDeliveryWorld(seed=int(rate), orders_per_hour=3600 * rate)
                total = int(rate * args.seconds)
                start_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2 + total / 20_000)
                planned = []
                for e in live.events(10**9, first=first):
                    if e.topic != ORDERS_TOPIC:
                        continue
                    at = start_at + dt.timedelta(seconds=len(planned) / rate)
                    e = dataclasses.replace(e, at=at, value={**e.value, "placed_at": at})
                    planned.append((e, app.encode(e)))
                    if len(planned) == total:
                        break
                while dt.datetime.now(dt.UTC) < start_at:
                    time.sleep(0.01)
                sent: dict[int, float] = {}
                t0 = time.time()
                n = 0
                while n < total and (elapsed := time.time() - t0) < args.seconds + 5:
                    while n < min(total, int(elapsed * rate)):
                        e, value = planned[n]
                        now = dt.datetime.now(dt.UTC)
                        app.send(e, timestamp=now, value=value)
                        sent[e.value["order_id"]] = now.timestamp()
                        n += 1
                    time.sleep(0.001)
                app.flush()
                achieved = n / (time.time() - t0)
                deadline = time.time() + 30
                while time.time() < deadline and not all(i in pred_at for i in sent):
                    time.sleep(0.1)
                steady = [i for i in sent if sent[i] - t0 >= 1.0]
                a = [kafka_at[i] - sent[i] for i in steady if i in kafka_at]
                b = [pred_at[i] - sent[i] for i in steady if i in pred_at]
                results.append((rate, achieved, pct(a), pct(b), len(steady) - len(b)))
                first = max(sent) + 1
                print(f"  {rate:>6g}/s (sent {achieved:,.0f}/s): Kafka alone p50 {pct(a)[0]:.0f} "
                      f"ms p99 {pct(a)[1]:.0f} ms; prediction p50 {pct(b)[0]:.0f} ms "
                      f"p99 {pct(b)[1]:.0f} ms", flush=True)  # fmt: skip
                time.sleep(2)
            done.set()
            for t in threads:
                t.join(10)
            rss = peak_rss_mib(scorer)
            stop(scorer)
    print("\nproduced -> | rate | (a) Kafka alone p50 / p99 / max | (b) prediction p50 / p99 / max"
          " | p99 b/a")  # fmt: skip
    for rate, achieved, a, b, missing in results:
        print(f"  {rate:>6g}/s ({achieved:,.0f} sent/s) | {a[0]:.0f} / {a[1]:.0f} / {a[2]:.0f} ms"
              f" | {b[0]:.0f} / {b[1]:.0f} / {b[2]:.0f} ms | {b[1] / a[1]:.1f}"
              + (f"  ({missing} missing)" if missing else ""))  # fmt: skip
    print(f"peak RSS: scorer {rss:,.0f} MiB, benchmark {own_peak_rss_mib():,.0f} MiB")


if __name__ == "__main__":
    main()
