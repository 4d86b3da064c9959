"""Benchmark: what small files cost a query, and what compaction gives back.

One command:

    .venv/bin/python benchmarks/compaction.py [--commits 1000] [--rows-per-commit 1000]

In the same run it writes the same bronze-shaped rows twice: (a) in one commit
(the baseline), (b) as ``--commits`` micro-batch commits, as an ingester does.
It then times a full-table aggregate (rows, last offset and distinct keys per
partition, via ``Lake.sql``) on (a), on (b), and on (b) after
``lake.maintenance.maintain`` (compaction + checkpoint); it prints each median
of ``--repeat`` queries, the ratios against (a), the files per table, the
compaction's own time, and this process's peak RSS.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lake import BronzeTable, Lake, bronze_rows, maintain

QUERY = (
    'SELECT "partition", count(*) AS n, max("offset") AS last, '
    'count(DISTINCT "key") AS keys FROM "bronze.{t}" GROUP BY "partition"'
)


def batches(commits: int, per_commit: int, partitions: int) -> list[pa.Table]:
    rng = np.random.default_rng(7)
    out, next_offset = [], [0] * partitions
    for c in range(commits):
        parts = rng.integers(0, partitions, per_commit)
        offsets = []
        for p in parts.tolist():
            offsets.append(next_offset[p])
            next_offset[p] += 1
        values = [rng.bytes(int(n)) for n in rng.integers(40, 160, per_commit)]
        keys = [f"user-{k}".encode() for k in rng.integers(0, 10_000, per_commit).tolist()]
        ts = [(1, 1_763_800_000_000 + c * 250 + i % 250) for i in range(per_commit)]
        out.append(bronze_rows("events", parts, offsets, ts, keys, values, [None] * per_commit))
    return out


def timed_query(root: str, table: str, repeat: int) -> tuple[float, pa.Table]:
    lake = Lake(root)
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = lake.sql(QUERY.format(t=table)).sort("partition")
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--commits", type=int, default=1000)
    ap.add_argument("--rows-per-commit", type=int, default=1000)
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    data = batches(args.commits, args.rows_per_commit, args.partitions)
    n = sum(b.num_rows for b in data)
    with tempfile.TemporaryDirectory() as root:
        t0 = time.perf_counter()
        BronzeTable.open(Lake(root), "single").append(pa.concat_tables(data).combine_chunks())
        one_s = time.perf_counter() - t0
        many = BronzeTable.open(Lake(root), "many")
        t0 = time.perf_counter()
        for b in data:
            many.append(b)
        many_s = time.perf_counter() - t0
        print(
            f"wrote {n:,} rows: (a) one commit in {one_s:.1f} s, "
            f"(b) {args.commits} commits in {many_s:.1f} s"
        )
        a_s, a_result = timed_query(root, "single", args.repeat)
        b_s, b_result = timed_query(root, "many", args.repeat)
        t0 = time.perf_counter()
        report = maintain(Lake(root), "bronze.many", vacuum=False)
        compact_s = time.perf_counter() - t0
        c_s, c_result = timed_query(root, "many", args.repeat)
        assert a_result.equals(b_result) and a_result.equals(c_result), "results differ"
        files_a = len(Lake(root).table("bronze.single").file_uris())
        print(f"full-table aggregate, median of {args.repeat}:")
        print(f"  {'(a) one commit':<26}{a_s * 1000:8.1f} ms   {files_a} files")
        print(
            f"  {f'(b) {args.commits} commits':<26}{b_s * 1000:8.1f} ms   "
            f"{report.files_before} files   b/a {b_s / a_s:.2f}"
        )
        print(
            f"  {'(c) (b) compacted':<26}{c_s * 1000:8.1f} ms   "
            f"{report.files_after} files   c/a {c_s / a_s:.2f}"
        )
        print(f"compaction + checkpoint took {compact_s:.1f} s")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process: {peak:,.0f} MiB (pid {os.getpid()})")


if __name__ == "__main__":
    main()
