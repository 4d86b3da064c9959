"""Committing micro-batches to bronze on a background thread, one at a time.

delta-rs releases the GIL while it encodes Parquet and writes the commit, so a
commit on this thread overlaps with consuming the next batch on the caller's.
With a :class:`SilverWriter`, each bronze commit is decoded into silver and
dead letters right behind it, on the same thread.
At most one commit is in flight: memory stays bounded at one batch being
written plus one being filled.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import pyarrow as pa

from ingest.silver_writer import DecodeSummary, SilverWriter
from lake import AppendResult, BronzeTable

__all__ = ["Committed", "Committer"]


@dataclass(frozen=True)
class Committed:
    """A finished commit with what the caller needs for logs and metrics."""

    result: AppendResult
    decoded: DecodeSummary | None
    nbytes: int
    commit_s: float
    latency_s: float  # first record read -> commit done
    done_at: float  # time.monotonic() at the end of the commit


class Committer:
    """Runs :meth:`BronzeTable.append` on one background thread.

    >>> import tempfile
    >>> from lake import bronze_rows
    >>> c = Committer(BronzeTable.open(tempfile.mkdtemp(), "t"), {})
    >>> c.submit(bronze_rows("t", [0], [0], [(1, 0)], [None], [b"v"], [None]), 1, 0.0)
    []
    >>> [d.result.ranges for d in c.drain()]
    [{0: (0, 0)}]
    >>> c.close()
    """

    def __init__(
        self, table: BronzeTable, metadata: dict[str, str], silver: SilverWriter | None = None
    ) -> None:
        self._table = table
        self._silver = silver
        self._metadata = metadata
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bronze-commit")
        self._inflight: Future[Committed] | None = None

    def submit(self, rows: pa.Table, nbytes: int, age_s: float) -> list[Committed]:
        """Start committing ``rows``; first wait for the commit in flight, if any,
        and return it (re-raising its error)."""
        done = self.drain()
        started = time.monotonic() - age_s
        self._inflight = self._pool.submit(self._commit, rows, nbytes, started)
        return done

    def poll(self) -> list[Committed]:
        """Return the commit in flight if it has finished, without waiting."""
        if self._inflight is not None and self._inflight.done():
            return self.drain()
        return []

    def drain(self) -> list[Committed]:
        """Wait for the commit in flight and return it (re-raising its error)."""
        fut, self._inflight = self._inflight, None
        return [fut.result()] if fut is not None else []

    @property
    def busy(self) -> bool:
        """True while a commit is in flight."""
        return self._inflight is not None

    def close(self) -> None:
        """Wait for the commit in flight (its error is dropped) and stop the thread."""
        self._pool.shutdown(wait=True)
        self._inflight = None

    def _commit(self, rows: pa.Table, nbytes: int, started: float) -> Committed:
        t0 = time.monotonic()
        # One contiguous batch: delta-rs then takes the GIL once to read it, not once
        # per chunk; and the copy happens here, off the consuming thread.
        rows = rows.combine_chunks()
        result = self._table.append(rows, custom_metadata=self._metadata)
        decoded = self._silver.write(rows) if self._silver is not None else None
        done = time.monotonic()
        return Committed(result, decoded, nbytes, done - t0, done - started, done)
