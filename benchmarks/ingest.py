"""Benchmark: `eventlake ingest --until-caught-up` against a bare consume loop.

One command, on the embedded broker:

    .venv/bin/python benchmarks/ingest.py [--records 1000000] [--value-size 100]

In the same run it produces the records once, then measures
(a) a bare confluent-kafka loop (same consumer settings, same group protocol)
    that touches each record's value and offset, and
(b) the real `eventlake ingest --topic T --until-caught-up` process writing bronze,
and prints records/s of each from the first record to the last (to the last
Delta commit for b), the ratio b/a, the wall-clock of the whole ingest command
(start-up and group join included), and the ingester's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ingest_cli import AVRO_SCHEMA, DONE, avro_values, start_ingest  # noqa: E402

from ingest import EmbeddedBroker, Record, consumer_config, produce  # noqa: E402
from lake import Lake, SchemaStore  # noqa: E402
from lake.names import value_subject  # noqa: E402


def bare_loop(bootstrap: str, topic: str, n: int, options: dict) -> tuple[float, float]:
    """Consume n records touching value and offset; return (records/s, seconds)."""
    c = Consumer(
        consumer_config(
            bootstrap,
            f"bench-bare-{uuid.uuid4().hex[:6]}",
            {**options, "auto.offset.reset": "earliest"},
        )
    )
    c.subscribe([topic])
    seen, first = 0, None
    checksum = 0
    while seen < n:
        msgs = c.consume(num_messages=10_000, timeout=0.5)
        if msgs and first is None:
            first = time.monotonic()
        for m in msgs:
            v = m.value()
            checksum += m.offset() + (len(v) if v else 0)
        seen += len(msgs)
    elapsed = time.monotonic() - (first or time.monotonic())
    c.close()
    return seen / elapsed, elapsed


def ingest_process(
    bootstrap: str, topic: str, lake: str, n: int, options: dict, decode: bool = False
) -> tuple[float, float, float, int]:
    """Run the real CLI; return (records/s first record->last commit, busy s, wall s, peak RSS)."""
    t0 = time.monotonic()
    proc = start_ingest(
        topic,
        "--until-caught-up",
        "--decode" if decode else "--no-decode",
        bootstrap=bootstrap,
        lake=lake,
        kafka_consumer_options=json.dumps(options),
    )
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        raise SystemExit(f"ingest failed ({proc.returncode}): {out}")
    m = DONE.search(out)
    if not m or int(m.group(1)) != n:
        raise SystemExit(f"unexpected ingest output: {out}")
    busy = float(m.group(2))
    return n / busy, busy, wall, usage.ru_maxrss * 1024  # ru_maxrss is KiB on Linux


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--value-size", type=int, default=100)
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=3, help="runs of (a) then (b); median shown")
    ap.add_argument(
        "--avro",
        action="store_true",
        help="Confluent-framed Avro values; (b) also decodes into silver (--decode)",
    )
    ap.add_argument(
        "--consumer-options",
        default="{}",
        help="librdkafka overrides for both loops, e.g. '{\"fetch.queue.backoff.ms\": 1000}'",
    )
    args = ap.parse_args()
    n = args.records
    options = json.loads(args.consumer_options)
    if options:
        print(f"consumer options for both (a) and (b): {options}")
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        bs = broker.bootstrap_servers
        topic = "bench"
        admin = AdminClient({"bootstrap.servers": bs})
        admin.create_topics([NewTopic(topic, args.partitions, 1)])[topic].result(timeout=10)
        head = os.urandom(max(0, args.value_size - 8))  # distinct values: head + record number
        t0 = time.monotonic()
        records = (
            avro_values(n)
            if args.avro
            else (
                Record(f"user-{i % 10_000}".encode(), head + i.to_bytes(8, "big")) for i in range(n)
            )
        )
        produce(bs, topic, records)
        what = "Confluent-framed Avro records" if args.avro else f"records of {args.value_size} B"
        print(
            f"produced {n:,} {what} over {args.partitions} partitions "
            f"in {time.monotonic() - t0:.1f} s (Tansu {broker.bootstrap_servers})"
        )
        rows = []
        for r in range(args.repeat):
            a_rate, a_s = bare_loop(bs, topic, n, options)
            lake = os.path.join(tmp, f"lake{r}")
            if args.avro:
                SchemaStore.open(Lake(lake)).register(value_subject(topic), AVRO_SCHEMA)
            b_rate, b_s, wall, rss = ingest_process(bs, topic, lake, n, options, args.avro)
            rows.append((b_rate / a_rate, a_rate, b_rate, wall, rss))
            print(
                f"run {r + 1}: (a) bare loop {a_rate:>10,.0f} records/s ({a_s:.2f} s)   "
                f"(b) ingest {b_rate:>10,.0f} records/s ({b_s:.2f} s; {wall:.2f} s wall-clock "
                f"with start-up and group join)   b/a {b_rate / a_rate:.2f}   "
                f"peak RSS {rss / 2**20:,.0f} MiB"
            )
        ratio, a_rate, b_rate, wall, _ = sorted(rows)[len(rows) // 2]
        print(
            f"median run: (a) {a_rate:,.0f} records/s, (b) {b_rate:,.0f} records/s, "
            f"ratio b/a {ratio:.2f} (target >= {0.8 if args.avro else 0.9})"
        )
        print(
            f"peak RSS of the ingester, worst run: {max(r[4] for r in rows) / 2**20:,.0f} MiB "
            f"(target < 1024 MiB)"
        )


if __name__ == "__main__":
    main()
