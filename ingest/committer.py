"""Committing micro-batches on background threads: bronze, then silver.

delta-rs releases the GIL while it encodes Parquet and writes the commit, and
the columnar Avro decoder runs in Rust, so these overlap with consuming the
next batch on the caller's thread. Two stages, one thread each, in batch order:
the bronze commit of batch N+1 runs while batch N is decoded into silver and
dead letters (with a :class:`SilverWriter`). At most two batches are in flight,
so memory stays bounded at three batches including the one being filled.

Every ``maintain_every`` bronze commits, a third thread compacts, checkpoints
and vacuums the tables this process writes (:func:`lake.maintenance.maintain`),
skipping a round while the previous one still runs.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import pyarrow as pa
from confluent_kafka import OFFSET_BEGINNING

from ingest.silver_writer import DecodeSummary, SilverWriter
from lake import AppendResult, BronzeTable, maintain
from lake.names import bronze

log = logging.getLogger(__name__)

__all__ = ["Committed", "Committer"]

_MAX_IN_FLIGHT = 2


@dataclass(frozen=True)
class Committed:
    """A finished commit with what the caller needs for logs and metrics."""

    topic: str
    result: AppendResult
    decoded: DecodeSummary | None
    nbytes: int
    commit_s: float  # the bronze commit
    latency_s: float  # first record read -> bronze (and silver) committed
    done_at: float  # time.monotonic() at the end


class Committer:
    """Runs :meth:`BronzeTable.append` (then :meth:`SilverWriter.write`) in the background.

    >>> import tempfile
    >>> from lake import Lake, bronze_rows
    >>> c = Committer(BronzeTable.open(Lake(tempfile.mkdtemp()), "t"), {})
    >>> c.submit(bronze_rows("t", [0], [0], [(1, 0)], [None], [b"v"], [None]), 1, 0.0)
    []
    >>> [d.result.ranges for d in c.drain()]
    [{0: (0, 0)}]
    >>> c.close()
    """

    def __init__(
        self,
        table: BronzeTable,
        metadata: dict[str, str],
        silver: SilverWriter | None = None,
        *,
        maintain_every: int = 0,
    ) -> None:
        self._table = table
        self.label = bronze(table.topic)
        self.fresh_offset = OFFSET_BEGINNING
        self._maintain_every = maintain_every
        self._commits = 0
        self._maintenance: Future[None] | None = None
        self._maintenance_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="maintain")
        self._metadata = metadata
        self._silver = silver
        self._bronze_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bronze-commit")
        self._silver_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="silver-commit")
        self._inflight: deque[Future[Committed]] = deque()

    def committed(self, partitions: list[int]) -> dict[int, int | None]:
        """The last offset bronze holds per partition (None: nothing yet)."""
        return self._table.committed(partitions)

    def take_over(self, partitions: list[int]) -> dict[int, int | None]:
        """Decode into silver what bronze holds of ``partitions`` past the decode
        cursor (their last owner may have died between its bronze and silver
        commits); then the last offset bronze holds per partition.

        Runs on the silver thread, so it follows this process's own silver commits,
        and before the partitions are read: silver's offset fence only moves forward,
        so what the last owner left must land before anything newer does.
        """
        committed = self.committed(partitions)  # also brings bronze's snapshot up to date
        if self._silver is not None:
            self._silver_pool.submit(self._silver.repair, self._table, partitions).result()
        return committed

    def submit(self, rows: pa.Table, nbytes: int, age_s: float) -> list[Committed]:
        """Start committing ``rows``; return the commits that finished meanwhile
        (waiting for the oldest if two are in flight; re-raising its error)."""
        done = self.poll()
        while len(self._inflight) >= _MAX_IN_FLIGHT:
            done.append(self._inflight.popleft().result())
        started = time.monotonic() - age_s
        bronze = self._bronze_pool.submit(self._bronze, rows)
        self._commits += 1
        if self._maintain_every and self._commits % self._maintain_every == 0:
            self._start_maintenance()
        if self._silver is None:
            self._inflight.append(
                self._bronze_pool.submit(
                    self._finish, self._table.topic, bronze, None, rows, nbytes, started
                )
            )
        else:
            self._inflight.append(
                self._silver_pool.submit(
                    self._finish, self._table.topic, bronze, self._silver, rows, nbytes, started
                )
            )
        return done

    def poll(self) -> list[Committed]:
        """The commits that have finished, oldest first, without waiting."""
        done = []
        while self._inflight and self._inflight[0].done():
            done.append(self._inflight.popleft().result())
        return done

    def drain(self) -> list[Committed]:
        """Wait for every commit in flight; return them oldest first (re-raising errors).

        Then the decode cursor is committed, so a drained committer leaves nothing
        to repair.
        """
        done = []
        while self._inflight:
            done.append(self._inflight.popleft().result())
        if self._silver is not None:
            self._silver.flush()
        return done

    @property
    def in_flight(self) -> int:
        """How many commits are in flight."""
        return len(self._inflight)

    def close(self) -> None:
        """Wait for what is in flight (errors dropped) and stop the threads."""
        self._bronze_pool.shutdown(wait=True)
        self._silver_pool.shutdown(wait=True)
        self._maintenance_pool.shutdown(wait=True)
        self._inflight.clear()

    def _start_maintenance(self) -> None:
        if self._maintenance is not None and not self._maintenance.done():
            return  # the last round is still running: skip this one
        names = [bronze(self._table.topic)]
        if self._silver is not None:
            names += self._silver.table_names()
        self._maintenance = self._maintenance_pool.submit(self._maintain, names)

    def _maintain(self, names: list[str]) -> None:
        for name in names:
            try:
                maintain(self._table.lake, name)
            except Exception as e:  # maintenance must never stop ingest
                log.warning("maintenance of %s failed (ingest goes on): %s", name, e)

    def _bronze(self, rows: pa.Table) -> tuple[AppendResult, float]:
        t0 = time.monotonic()
        # One contiguous batch: delta-rs then takes the GIL once to read it, not once
        # per chunk; and the copy happens here, off the consuming thread.
        result = self._table.append(rows.combine_chunks(), custom_metadata=self._metadata)
        return result, time.monotonic() - t0

    @staticmethod
    def _finish(
        topic: str,
        bronze: Future[tuple[AppendResult, float]],
        silver: SilverWriter | None,
        rows: pa.Table,
        nbytes: int,
        started: float,
    ) -> Committed:
        result, commit_s = bronze.result()
        decoded = silver.write(rows) if silver is not None else None
        done = time.monotonic()
        return Committed(topic, result, decoded, nbytes, commit_s, done - started, done)
