"""Starting the real `eventlake ingest` command from a benchmark, and the Avro records
the ingest benchmarks send."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import fastavro

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the ingest package, not benchmarks/ingest.py

from ingest import Record  # noqa: E402

DONE = re.compile(r"ingested (\d+) records .* ([\d.]+) s from first record to last commit")
"""What `eventlake ingest` prints at the end: records, and seconds from first record to last
commit."""


def start_ingest(
    topic: str | None, *flags: str, bootstrap: str, lake: str, **settings: str
) -> subprocess.Popen[str]:
    """`eventlake ingest [--topic TOPIC] FLAGS...` with only the EVENTLAKE_* settings given
    (bootstrap servers, lake root, and ``settings`` by name), stdout piped."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTLAKE_")}
    env.update(EVENTLAKE_KAFKA_BOOTSTRAP_SERVERS=bootstrap, EVENTLAKE_LAKE_ROOT=lake)
    env.update({f"EVENTLAKE_{k.upper()}": v for k, v in settings.items()})
    command = [
        sys.executable,
        "-m",
        "orchestration",
        "--log-level",
        "WARNING",
        "ingest",
        *(["--topic", topic] if topic else []),
        *flags,
    ]
    return subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True)


def caught_up_rate(
    topic: str | None, *flags: str, bootstrap: str, lake: str, **settings: str
) -> tuple[float, int]:
    """Run `eventlake ingest ... --until-caught-up` to its end; return records/s from the
    first record to the last commit, and the process's peak RSS in bytes."""
    proc = start_ingest(
        topic, "--until-caught-up", *flags, bootstrap=bootstrap, lake=lake, **settings
    )
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"ingest failed: {out}")
    m = DONE.search(out)
    if not m:
        raise SystemExit(f"unexpected ingest output: {out}")
    return int(m.group(1)) / float(m.group(2)), usage.ru_maxrss * 1024  # KiB on Linux


def print_table(what: str, a: str, b: str, summary: list[tuple[int, float, float, int]]) -> None:
    """A Markdown table of (size, a rate, b rate, peak RSS of b) rows with b/a."""
    print(f"\n| {what} | (a) {a}, records/s | (b) {b}, records/s | b/a | peak RSS (b) |")
    print("| --- | --- | --- | --- | --- |")
    for n, ra, rb, rss in summary:
        print(f"| {n:,} | {ra:,.0f} | {rb:,.0f} | {rb / ra:.2f} | {rss / 2**20:,.0f} MiB |")


AVRO_SCHEMA = json.dumps(
    {
        "type": "record",
        "name": "OrderPlaced",
        "namespace": "bench",
        "fields": [
            {"name": "order_id", "type": "long"},
            {"name": "user_id", "type": "long"},
            {"name": "distance_km", "type": "double"},
            {"name": "city", "type": "string"},
            {"name": "coupon", "type": ["null", "string"], "default": None},
        ],
    }
)


def avro_values(n: int) -> Iterator[Record]:
    """Confluent-framed Avro records of schema id 1 (about 40 bytes each)."""
    parsed = fastavro.parse_schema(json.loads(AVRO_SCHEMA))
    buf = io.BytesIO()
    for i in range(n):
        buf.seek(0)
        buf.truncate()
        fastavro.schemaless_writer(
            buf,
            parsed,
            {
                "order_id": i,
                "user_id": i % 10_000,
                "distance_km": (i % 1000) / 100,
                "city": ("Lyon", "Oslo", "Quito")[i % 3],
                "coupon": None if i % 4 else "SPRING",
            },
        )
        yield Record(f"user-{i % 10_000}".encode(), b"\x00\x00\x00\x00\x01" + buf.getvalue())
