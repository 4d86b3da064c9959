"""Benchmark: feature updates and online lookups against history size.

    .venv/bin/python benchmarks/features_scale.py [--sizes 100000 1000000 10000000]

For each size, an orders-like silver table (50k users, 700 restaurants, one
order every 0.06 s of event time) with four aggregations (user order count,
user mean distance, restaurant mean distance, restaurant orders in the last
30 minutes) is built, the incremental state is caught up once, and then:

- (a) baseline, the previous implementation's cost: evaluating the feature set
  over the whole history to get the rows of 1,000 new events (what
  ``update_features`` did before it kept state);
- (b) ``update_features`` for 1,000 new events, from the state (median of 3);
- online lookup of 50 new events from ``OnlineFeatures`` (p50/p99 of 200 calls);
- the memory an ``OnlineFeatures`` holds once loaded (Python heap, ``tracemalloc``),
  per million keys.

Each size runs in its own process, so peak RSS is per size. Prints a table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from features import (
    FeatureSet,
    OnlineFeatures,
    feature_frame,
    load_state,
    prior_count,
    prior_mean,
    update_features,
)
from lake import Lake
from lake.names import silver

USERS, RESTAURANTS, GAP_S, NEW = 50_000, 700, 0.06, 1_000
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
FS = FeatureSet(
    name="orders_bench",
    source=silver("orders-value"),
    key="order_id",
    event_time="placed_at",
    features={
        "distance_km": pl.col("distance_km"),
        "user_orders_before": prior_count("user_id"),
        "user_mean_distance": prior_mean("distance_km", "user_id"),
        "restaurant_mean_distance": prior_mean("distance_km", "restaurant_id"),
        "kitchen_load_30m": prior_count("restaurant_id", window=dt.timedelta(minutes=30)),
    },
)


def orders(first: int, n: int, seed: int) -> pl.DataFrame:
    """Silver-shaped orders ``first .. first + n - 1``."""
    rng = np.random.default_rng(seed)
    ids = np.arange(first, first + n, dtype=np.int64)
    placed = pl.Series(
        [T0 + dt.timedelta(seconds=float(i) * GAP_S) for i in (first, first + n - 1)]
    )
    times = pl.datetime_range(placed[0], placed[1], interval=f"{int(GAP_S * 1e6)}us",
                              eager=True, time_zone="UTC")[:n]  # fmt: skip
    return pl.DataFrame(
        {
            "order_id": ids,
            "user_id": rng.integers(0, USERS, n),
            "restaurant_id": rng.integers(0, RESTAURANTS, n),
            "distance_km": rng.uniform(0.3, 9.0, n).round(2),
            "placed_at": times.dt.cast_time_unit("us"),
            "_kafka_topic": ["orders"] * n,
            "_kafka_partition": np.zeros(n, dtype=np.int32),
            "_kafka_offset": ids,
            "_kafka_timestamp": times.dt.cast_time_unit("us"),
            "_schema_id": np.ones(n, dtype=np.int32),
            "_schema_version": np.ones(n, dtype=np.int32),
        }
    ).with_columns(pl.col("placed_at").dt.date().alias("_date"))


def one_size(size: int) -> dict:
    with tempfile.TemporaryDirectory() as root:
        lake = Lake(root)
        uri = lake.uri(FS.source)
        for start in range(0, size, 2_000_000):  # written in chunks: bounded memory
            chunk = orders(start, min(2_000_000, size - start), seed=start)
            chunk.write_delta(uri, mode="append", delta_write_options={"partition_by": ["_date"]})
        t0 = time.perf_counter()
        update_features(lake, FS)  # catch the state up once (cost follows the history)
        catch_up = time.perf_counter() - t0
        a_s, b_s, first = [], [], size
        for r in range(3):
            new = orders(first, NEW, seed=10_000 + r)
            new.write_delta(uri, mode="append", delta_write_options={"partition_by": ["_date"]})
            first += NEW
            t0 = time.perf_counter()
            rows = feature_frame(lake, FS, with_label=False).filter(
                pl.col("_kafka_offset") >= first - NEW
            ).collect()  # fmt: skip
            a_s.append(time.perf_counter() - t0)
            assert rows.height == NEW
            t0 = time.perf_counter()
            update = update_features(lake, FS)
            b_s.append(time.perf_counter() - t0)
            assert update.new_rows == NEW, update
        state = load_state(lake, FS)
        tracemalloc.start()
        online = OnlineFeatures.load(lake, FS)
        held = tracemalloc.get_traced_memory()[0] / 2**20  # what stays allocated
        tracemalloc.stop()
        lookups = []
        for i in range(200):
            events = orders(first + i * 50, 50, seed=20_000 + i).drop("_kafka_timestamp")
            t0 = time.perf_counter()
            online.features(events)
            lookups.append(time.perf_counter() - t0)
        lookups.sort()
        return {
            "size": size,
            "catch_up_s": catch_up,
            "a_s": statistics.median(a_s),
            "b_s": statistics.median(b_s),
            "keys": state.keys(),
            "state_events": state.events.height,
            "online_p50_ms": lookups[len(lookups) // 2] * 1000,
            "online_p99_ms": lookups[int(len(lookups) * 0.99) - 1] * 1000,
            "online_mib": held,
            "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000, 10_000_000])
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one_size(args.one)))
        return
    results = []
    for size in args.sizes:
        out = subprocess.run(
            [sys.executable, __file__, "--one", str(size)],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "POLARS_MAX_THREADS": os.environ.get("POLARS_MAX_THREADS", "2")},
        )
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        r = results[-1]
        print(f"{size:,} rows done: update {r['b_s'] * 1000:.0f} ms", file=sys.stderr)
    base = results[0]["b_s"]
    print(
        f"{'history':>12} {'(a) full recompute':>19} {'(b) incremental':>16} {'a/b':>7} "
        f"{'b vs smallest':>13} {'online p50/p99':>16} {'keys':>7} {'MiB/1M keys':>12} "
        f"{'peak RSS':>9}"
    )
    for r in results:
        per_million = r["online_mib"] / r["keys"] * 1e6 if r["keys"] else 0.0
        print(
            f"{r['size']:>12,} {r['a_s'] * 1000:>16.0f} ms {r['b_s'] * 1000:>13.0f} ms "
            f"{r['a_s'] / r['b_s']:>7.1f} {r['b_s'] / base:>12.2f}x "
            f"{r['online_p50_ms']:>7.1f}/{r['online_p99_ms']:.1f} ms {r['keys']:>7,} "
            f"{per_million:>12,.0f} {r['peak_mib']:>6,.0f} MiB"
        )
    catch_up = ", ".join(f"{r['size']:,}: {r['catch_up_s']:.1f} s" for r in results)
    print(f"(catch-up of the state, once per size: {catch_up})")


if __name__ == "__main__":
    main()
