"""Benchmark: the online learner against a bare River loop over the same rows.

One command:

    .venv/bin/python benchmarks/online.py [--rows 1000000] [--repeat 3]

It writes ``--rows`` labeled feature rows (6 features) to a real
``features/<name>`` Delta table, then, ``--repeat`` times, measures
(a) a bare River loop over the same rows, already in memory as dicts:
    ``predict_one``, ``metric.update``, ``learn_one``;
(b) ``training.online.learn_online`` from scratch: reading the Delta table,
    building the dicts, the same loop plus the drift detector and the trace,
    and registering the version (pickled model) in the lake.
It prints rows/s of each, the ratio b/a (target >= 0.8), and peak RSS.
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from river import linear_model, metrics, preprocessing

from features import FeatureSet
from lake import Lake
from lake.names import DATE, features, silver
from training.online import learn_online
from training.specs import ModelSpec

FEATURES = ["distance_km", "items", "hour", "rush_hour", "courier_load", "user_orders_before"]


def model():
    return preprocessing.StandardScaler() | linear_model.LinearRegression()


def write_features(root: str, n: int) -> None:
    rng = np.random.default_rng(1)
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    cols = {f: rng.uniform(0, 10, n) for f in FEATURES}
    df = pl.DataFrame(
        {
            "order_id": np.arange(n),
            "placed_at": pl.datetime_range(
                t0, t0 + dt.timedelta(seconds=n - 1), "1s", eager=True, time_zone="UTC"
            ),
            **cols,
            "label": 10 + 3 * cols["distance_km"] + rng.normal(0, 1, n),
            "_kafka_topic": ["orders"] * n,
            "_kafka_partition": np.zeros(n, np.int32),
            "_kafka_offset": np.arange(n),
            "_label_topic": ["deliveries"] * n,
            "_label_partition": np.zeros(n, np.int32),
            "_label_offset": np.arange(n),
        }
    ).with_columns(pl.col("placed_at").dt.date().alias("_date"))
    uri = Lake(root).uri(features("bench"))
    df.write_delta(uri, delta_write_options={"partition_by": [DATE]})


def bare_loop(root: str) -> tuple[float, int]:
    df = pl.read_delta(Lake(root).uri(features("bench"))).sort("placed_at")
    xs, ys = df.select(FEATURES).to_dicts(), df["label"].to_list()
    m, metric = model(), metrics.MAE()
    t0 = time.perf_counter()
    for x, y in zip(xs, ys, strict=True):
        metric.update(y, m.predict_one(x))
        m.learn_one(x, y)
    return time.perf_counter() - t0, len(ys)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    fs = FeatureSet(
        "bench",
        silver("unused"),
        key="order_id",
        event_time="placed_at",
        features={f: pl.col(f) for f in FEATURES},
        label="unused",
    )
    ratios = []
    with tempfile.TemporaryDirectory() as root:
        write_features(root, args.rows)
        print(f"wrote {args.rows:,} labeled feature rows to {features('bench')} under {root}")
        for r in range(args.repeat):
            a_s, n = bare_loop(root)
            spec = ModelSpec(name=f"bench{r}", feature_set=fs, make_model=model)
            t0 = time.perf_counter()
            run = learn_online(Lake(root), spec)
            b_s = time.perf_counter() - t0
            assert run.rows == n
            ratios.append((n / b_s) / (n / a_s))
            print(
                f"run {r + 1}: (a) bare River loop {n / a_s:,.0f} rows/s ({a_s:.1f} s)   "
                f"(b) learn_online {n / b_s:,.0f} rows/s ({b_s:.1f} s, read + learn + register)"
                f"   b/a {ratios[-1]:.2f}"
            )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"median b/a {statistics.median(ratios):.2f} (target >= 0.8); peak RSS {peak:,.0f} MiB")


if __name__ == "__main__":
    main()
