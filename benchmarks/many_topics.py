"""Benchmark: one `eventlake ingest` process over 10 topics against the same process
over one topic holding the same total records.

One command, on the embedded broker:

    .venv/bin/python benchmarks/many_topics.py [--sizes 100000 300000 1000000] [--topics 10]

For each size it produces N records of 100 B once to a single topic (3 partitions)
and once spread evenly over ``--topics`` topics (3 partitions each), then runs the
real `eventlake ingest --until-caught-up` on the single topic (a, the baseline) and
with `--topic-pattern` over the many (b), alternately, ``--repeat`` times. It prints
records/s from the first record to the last Delta commit, the ratio b/a (target
>= 0.9) and each process's peak RSS, so how cost grows with size is visible.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from confluent_kafka.admin import AdminClient, NewTopic

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ingest_cli import caught_up_rate, print_table  # noqa: E402

from ingest import EmbeddedBroker, Record, produce  # noqa: E402

PARTITIONS = 3


def records(n: int, head: bytes) -> list[Record]:
    return [Record(f"user-{i % 10_000}".encode(), head + i.to_bytes(8, "big")) for i in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    ap.add_argument("--topics", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3, help="runs of (a) then (b); median shown")
    ap.add_argument("--latency-ms", type=int, default=250, help="batch_max_latency_ms of both")
    args = ap.parse_args()
    head = os.urandom(92)
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        bs = broker.bootstrap_servers
        admin = AdminClient({"bootstrap.servers": bs})
        summary = []
        for n in args.sizes:
            single = f"one{n}"
            many = [f"many{n}.{k}" for k in range(args.topics)]
            new = [NewTopic(t, PARTITIONS, 1) for t in [single, *many]]
            for f in admin.create_topics(new).values():
                f.result(timeout=10)
            t0 = time.monotonic()
            produce(bs, single, records(n, head))
            share = n // args.topics
            for k, t in enumerate(many):
                produce(bs, t, records(share + (k < n % args.topics), head))
            print(f"\n{n:,} records of 100 B: one topic, and {args.topics} topics "
                  f"(produced in {time.monotonic() - t0:.1f} s)")  # fmt: skip
            rows = []
            for r in range(args.repeat):
                lat = str(args.latency_ms)
                a, a_rss = caught_up_rate(
                    None,
                    "--no-decode",
                    "--topic",
                    single,
                    bootstrap=bs,
                    lake=f"{tmp}/a{n}-{r}",
                    batch_max_latency_ms=lat,
                )
                b, b_rss = caught_up_rate(None, "--no-decode", "--topic-pattern", f"^many{n}\\.",
                                          bootstrap=bs, lake=f"{tmp}/b{n}-{r}",
                                          batch_max_latency_ms=lat)  # fmt: skip
                rows.append((b / a, a, b, a_rss, b_rss))
                print(f"  run {r + 1}: (a) 1 topic {a:>9,.0f} records/s   (b) {args.topics} "
                      f"topics {b:>9,.0f} records/s   b/a {b / a:.2f}   peak RSS "
                      f"{a_rss / 2**20:,.0f} / {b_rss / 2**20:,.0f} MiB")  # fmt: skip
            _, a, b, _, _ = sorted(rows)[len(rows) // 2]
            summary.append((n, a, b, max(r[4] for r in rows)))
        print_table("records", "1 topic", f"{args.topics} topics", summary)
        print("target: b/a >= 0.9 at every size")


if __name__ == "__main__":
    main()
