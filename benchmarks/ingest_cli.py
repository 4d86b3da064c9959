"""Starting the real `eventlake ingest` command from a benchmark."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


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
    m = re.search(r"ingested (\d+) records .* ([\d.]+) s from first record to last commit", out)
    if not m:
        raise SystemExit(f"unexpected ingest output: {out}")
    return int(m.group(1)) / float(m.group(2)), usage.ru_maxrss * 1024  # KiB on Linux


def print_table(what: str, a: str, b: str, summary: list[tuple[int, float, float, int]]) -> None:
    """A Markdown table of (size, a rate, b rate, peak RSS of b) rows with b/a."""
    print(f"\n| {what} | (a) {a}, records/s | (b) {b}, records/s | b/a | peak RSS (b) |")
    print("| --- | --- | --- | --- | --- |")
    for n, ra, rb, rss in summary:
        print(f"| {n:,} | {ra:,.0f} | {rb:,.0f} | {rb / ra:.2f} | {rss / 2**20:,.0f} MiB |")
