"""Where the consume loop's micro-batches go: a :class:`Sink`.

The loop (:class:`ingest.Ingester`) positions each assigned partition after the
last offset its sink holds (:meth:`Sink.take_over`, from the lake, never from
Kafka's group offsets), hands it every full micro-batch, and reports what the
sink committed. Bronze with silver (:class:`ingest.committer.Committer`) is one
sink; the scoring engine's Kafka front door is another.
"""

from __future__ import annotations

from typing import Protocol

import pyarrow as pa

from ingest.committer import Committed

__all__ = ["Sink"]


class Sink(Protocol):
    """A durable, offset-fenced destination of micro-batches of raw Kafka records
    (the bronze row layout of :func:`lake.bronze_rows`)."""

    label: str
    """What logs call it, e.g. ``bronze/orders``."""
    fresh_offset: int
    """Where a partition the sink has never seen starts (``OFFSET_BEGINNING`` or ``_END``)."""

    def committed(self, partitions: list[int]) -> dict[int, int | None]:
        """The last offset the sink holds per partition (None: nothing yet)."""
        ...

    def take_over(self, partitions: list[int]) -> dict[int, int | None]:
        """Called when this process is assigned ``partitions``, before any is read:
        finish what their last owner left half-done (a crash between commits), then
        return :meth:`committed` for them."""
        ...

    def submit(self, rows: pa.Table, nbytes: int, age_s: float) -> list[Committed]:
        """Start committing ``rows``; return commits that finished meanwhile."""
        ...

    def poll(self) -> list[Committed]:
        """Commits that finished, oldest first, without waiting."""
        ...

    def drain(self) -> list[Committed]:
        """Wait for every commit in flight; return them oldest first."""
        ...

    @property
    def in_flight(self) -> int:
        """How many commits are in flight."""
        ...

    def close(self) -> None:
        """Release threads and handles."""
        ...
