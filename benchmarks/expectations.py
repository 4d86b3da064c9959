"""Benchmark: bronze + silver throughput of `eventlake ingest --decode` with five
data-quality expectations on the demo's `order_placed` events, against the same
ingest without them.

One command, on the embedded broker:

    .venv/bin/python benchmarks/expectations.py [--sizes 100000 250000 500000]

For each size it sends N `order_placed` events of the demo's app once (Confluent's
AvroSerializer, schemas through eventlake's registry), then runs the real
`eventlake ingest --decode --until-caught-up` without expectations (a, the
baseline) and with five (b: order_id unique within a day, user_id not null,
distance_km between 0 and 50, items between 1 and 20, placed_at fresh within an
hour), alternately, ``--repeat`` times, each into a new lake. It prints records/s
from the first record to the last commit, the ratio b/a (target >= 0.9: at most
10% cost) and peak RSS per size.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ingest_cli import caught_up_rate, print_table  # noqa: E402

from ingest import EmbeddedBroker, ensure_topic, wait_for_broker  # noqa: E402
from ingest.schema_registry_api import SchemaRegistryServer  # noqa: E402
from lake import Lake, SchemaStore, read_quality  # noqa: E402
from lake.names import value_subject  # noqa: E402
from orchestration.demo.definitions import ORDERS_TOPIC  # noqa: E402
from orchestration.demo.simulation import EventPublisher, FoodDeliveryWorld  # noqa: E402

FIVE = [
    {"name": "one_order", "check": "unique", "column": "order_id", "within_s": 86_400},
    {"name": "user", "check": "not_null", "column": "user_id"},
    {"name": "distance", "check": "between", "column": "distance_km", "min": 0, "max": 50},
    {"name": "items", "check": "between", "column": "items", "min": 1, "max": 20},
    {"name": "fresh", "check": "fresh", "column": "placed_at", "within_s": 3600},
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 250_000, 500_000])
    ap.add_argument("--repeat", type=int, default=3, help="runs of (a) then (b); median shown")
    args = ap.parse_args()
    expectations = json.dumps({value_subject(ORDERS_TOPIC): FIVE})
    with tempfile.TemporaryDirectory() as tmp:
        summary = []
        for n in args.sizes:
            with (
                EmbeddedBroker() as broker,
                SchemaRegistryServer(SchemaStore.open(Lake(f"{tmp}/registry{n}"))) as registry,
            ):
                bs = broker.bootstrap_servers
                admin = wait_for_broker(bs, wait_s=30)
                ensure_topic(admin, ORDERS_TOPIC, bootstrap_servers=bs, create=True, partitions=3)
                t0 = time.monotonic()
                world = FoodDeliveryWorld(start=dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
                                          orders_per_hour=3600, upgrade_after=None)  # fmt: skip
                app = EventPublisher(bs, registry.url)
                for event in world.events(n):
                    if event.topic == ORDERS_TOPIC:
                        app.send(event)
                app.flush()
                del app
                print(f"\n{n:,} order_placed events sent in {time.monotonic() - t0:.1f} s")
                rows = []
                for r in range(args.repeat):
                    a, a_rss = caught_up_rate(
                        ORDERS_TOPIC,
                        "--decode",
                        bootstrap=bs,
                        lake=f"{tmp}/a{n}-{r}",
                        registry_url=registry.url,
                    )
                    b, b_rss = caught_up_rate(ORDERS_TOPIC, "--decode", bootstrap=bs,
                                              lake=f"{tmp}/b{n}-{r}", registry_url=registry.url,
                                              expectations=expectations)  # fmt: skip
                    judged = read_quality(Lake(f"{tmp}/b{n}-{r}")).column("records")
                    if sum(judged.to_pylist()) != 5 * n:
                        raise SystemExit(f"(b) judged {sum(judged.to_pylist())} != 5 x {n}")
                    rows.append((b / a, a, b, a_rss, b_rss))
                    print(f"  run {r + 1}: (a) no expectations {a:>9,.0f} records/s   (b) five "
                          f"{b:>9,.0f} records/s   b/a {b / a:.2f}   peak RSS "
                          f"{a_rss / 2**20:,.0f} / {b_rss / 2**20:,.0f} MiB")  # fmt: skip
            _, a, b, _, _ = sorted(rows)[len(rows) // 2]
            summary.append((n, a, b, max(r[4] for r in rows)))
        print_table("events", "bronze+silver", "+ 5 expectations", summary)
        print("target: b/a >= 0.9 (expectations cost at most 10%)")


if __name__ == "__main__":
    main()
