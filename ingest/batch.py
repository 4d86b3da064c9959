"""The micro-batch: Kafka messages gathered column by column until committed."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

import numpy as np
import pyarrow as pa
from confluent_kafka import Message

from lake.bronze import bronze_rows

__all__ = ["MicroBatch"]

# Unbound C methods mapped over a list cost about 30 ns a message; a Python
# comprehension calling m.value() costs twice that.
_PARTITION, _OFFSET, _TIMESTAMP = Message.partition, Message.offset, Message.timestamp
_KEY, _VALUE, _HEADERS = Message.key, Message.value, Message.headers


class MicroBatch:
    """Records read from Kafka and not yet committed to bronze.

    Messages are turned into Arrow columns as they arrive (:meth:`add`), so the
    confluent-kafka message objects are released at once and the batch's
    memory is its Arrow size. ``next_offsets`` holds, per partition, the offset
    after the last record added.
    """

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self._chunks: list[pa.Table] = []
        self.records = 0
        self.bytes = 0
        self.started: float | None = None
        self.next_offsets: dict[int, int] = {}

    def add(self, messages: Sequence[Message]) -> None:
        """Append error-free ``messages`` (all of this batch's topic)."""
        n = len(messages)
        if n == 0:
            return
        if self.started is None:
            self.started = time.monotonic()
        partitions = np.fromiter(map(_PARTITION, messages), dtype=np.int32, count=n)
        offsets = np.fromiter(map(_OFFSET, messages), dtype=np.int64, count=n)
        chunk = bronze_rows(
            self.topic,
            partitions,
            offsets,
            list(map(_TIMESTAMP, messages)),
            list(map(_KEY, messages)),
            list(map(_VALUE, messages)),
            list(map(_HEADERS, messages)),  # type: ignore[arg-type]
        )
        self._chunks.append(chunk)
        self.records += n
        self.bytes += chunk.column("value").nbytes + chunk.column("key").nbytes
        for p in np.unique(partitions):
            last = int(offsets[partitions == p].max())
            self.next_offsets[int(p)] = max(self.next_offsets.get(int(p), 0), last + 1)

    def age(self) -> float:
        """Seconds since the first record of this batch was added (0 if empty)."""
        return 0.0 if self.started is None else time.monotonic() - self.started

    def drop(self, partitions: Iterable[int]) -> int:
        """Forget the records of ``partitions`` (lost to another consumer); return how many."""
        lost = set(partitions)
        kept: list[pa.Table] = []
        dropped = 0
        for chunk in self._chunks:
            mask = ~np.isin(chunk.column("partition").to_numpy(), list(lost))
            kept_chunk = chunk.filter(mask)
            dropped += chunk.num_rows - kept_chunk.num_rows
            if kept_chunk.num_rows:
                kept.append(kept_chunk)
        self._chunks = kept
        self.records -= dropped
        for p in lost:
            self.next_offsets.pop(p, None)
        return dropped

    def take(self) -> pa.Table | None:
        """Return every record as one table and empty the batch (None if empty)."""
        if not self._chunks:
            return None
        table = pa.concat_tables(self._chunks)
        self._chunks = []
        self.records = 0
        self.bytes = 0
        self.started = None
        return table
