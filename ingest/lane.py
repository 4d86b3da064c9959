"""A lane: one topic's share of an ingest run.

One :class:`ingest.Ingester` runs one consumer over any number of topics; each
topic gets a lane with its own micro-batch, its own sink (``bronze/<topic>``
with its own ``txn`` cursors) and the partitions of it this process owns, so
exactly-once holds per topic-partition exactly as with one topic.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ingest.batch import MicroBatch
from ingest.sink import Sink

__all__ = ["Lane", "TopicSummary"]


@dataclass
class TopicSummary:
    """What a run committed of one topic: records, Delta commits, last version,
    next offset per partition.

    >>> TopicSummary("orders").records
    0
    """

    topic: str
    records: int = 0
    commits: int = 0
    last_version: int | None = None
    next_offsets: dict[int, int] = field(default_factory=dict)


@dataclass
class Lane:
    """One topic's micro-batch, sink, owned partitions and read positions."""

    topic: str
    sink: Sink
    batch: MicroBatch = field(init=False)
    summary: TopicSummary = field(init=False)
    owned: set[int] = field(default_factory=set)
    position: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.batch = MicroBatch(self.topic)
        self.summary = TopicSummary(self.topic)
