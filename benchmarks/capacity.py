"""Benchmark: the capacity of ingest on this machine, 1 process against 2 in one group.

One command, on the embedded broker:

    .venv/bin/python benchmarks/capacity.py [--sizes 200000 500000 1000000] [--partitions 6]

For each size it produces N Confluent-framed Avro records once (6 partitions), then
runs the real `eventlake ingest --until-caught-up` for bronze only and for bronze +
silver (`--decode`): (a) one process, the baseline, and (b) two processes in one
consumer group started together. It prints the aggregate records/s (records over the
longest first-record-to-last-commit window), b/a, records per CPU-second of the
ingest processes (user + system from `wait4`, less each process's start-up, measured
by a run that finds the lake caught up: records/s per core) and the largest peak
RSS. The README's capacity model is built on these figures.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

from confluent_kafka.admin import AdminClient, NewTopic

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ingest_cli import AVRO_SCHEMA, DONE, avro_values, start_ingest  # noqa: E402

from ingest import EmbeddedBroker, produce  # noqa: E402
from lake import Lake, SchemaStore  # noqa: E402
from lake.names import value_subject  # noqa: E402


def run_group(bs: str, topic: str, lake: str, processes: int, decode: bool) -> dict[str, float]:
    """Start ``processes`` ingesters in one new group; wait for all; sum what they did."""
    group = f"cap-{uuid.uuid4().hex[:6]}"
    flag = "--decode" if decode else "--no-decode"
    procs = [
        start_ingest(topic, "--until-caught-up", flag, "--group", group, bootstrap=bs, lake=lake)
        for _ in range(processes)
    ]
    records, busy, cpu, rss = 0, 0.0, 0.0, 0
    for p in procs:
        out = p.stdout.read() if p.stdout else ""
        _, status, usage = os.wait4(p.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"ingest failed: {out}")
        m = DONE.search(out)
        if not m:
            raise SystemExit(f"unexpected ingest output: {out}")
        records += int(m.group(1))
        busy = max(busy, float(m.group(2)))
        cpu += usage.ru_utime + usage.ru_stime
        rss = max(rss, usage.ru_maxrss * 1024)
    # Start-up (imports, lake and broker handshakes) is not per record: measure it with a run
    # that finds the lake caught up and leaves at once, and take it out of each process.
    idle = start_ingest(topic, "--until-caught-up", flag, "--group", group, bootstrap=bs,
                        lake=lake)  # fmt: skip
    if idle.stdout:
        idle.stdout.read()
    _, _, usage = os.wait4(idle.pid, 0)
    work = cpu - processes * (usage.ru_utime + usage.ru_stime)
    return {"records": records, "rate": records / busy, "per_cpu_s": records / work, "rss": rss}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[200_000, 500_000, 1_000_000])
    ap.add_argument("--partitions", type=int, default=6)
    args = ap.parse_args()
    rows = []
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        bs = broker.bootstrap_servers
        admin = AdminClient({"bootstrap.servers": bs})
        for n in args.sizes:
            topic = f"cap{n}"
            admin.create_topics([NewTopic(topic, args.partitions, 1)])[topic].result(timeout=10)
            t0 = time.monotonic()
            produce(bs, topic, avro_values(n))
            print(f"\n{n:,} Avro records over {args.partitions} partitions "
                  f"(produced in {time.monotonic() - t0:.1f} s)")  # fmt: skip
            for decode in (False, True):
                what = "bronze + silver" if decode else "bronze"
                results = []
                for k in (1, 2):
                    lake = f"{tmp}/{topic}-{decode}-{k}"
                    SchemaStore.open(Lake(lake)).register(value_subject(topic), AVRO_SCHEMA)
                    r = run_group(bs, topic, lake, k, decode)
                    if r["records"] != n:
                        raise SystemExit(f"{k} process(es) ingested {r['records']} of {n}")
                    results.append(r)
                    print(f"  {what:<15} {k} process(es): {r['rate']:>9,.0f} records/s, "
                          f"{r['per_cpu_s']:>9,.0f} records per CPU-second, "
                          f"peak RSS {r['rss'] / 2**20:,.0f} MiB")  # fmt: skip
                a, b = results
                rows.append((n, what, a, b))
    print("\n| records | stage | (a) 1 process | (b) 2 processes | b/a | records per "
          "CPU-second (a / b) | peak RSS (b) |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for n, what, a, b in rows:
        print(f"| {n:,} | {what} | {a['rate']:,.0f}/s | {b['rate']:,.0f}/s | "
              f"{b['rate'] / a['rate']:.2f} | {a['per_cpu_s']:,.0f} / {b['per_cpu_s']:,.0f} | "
              f"{b['rss'] / 2**20:,.0f} MiB |")  # fmt: skip


if __name__ == "__main__":
    main()
