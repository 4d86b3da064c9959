"""Re-publishing bronze to Kafka: putting back what a broker lost.

:func:`republish` re-sends a topic's bronze records byte for byte (key, value,
headers, original timestamp) in per-partition offset order, to the same
partition when the target topic has as many partitions as the source had, by
key otherwise. It is exactly once with a transactional producer: each chunk of
records is one Kafka transaction that also commits the replay's progress, the
next bronze offset per source partition, as consumer-group offsets
(``send_offsets_to_transaction``, the consume-transform-produce protocol). A
replay killed at any moment and run again resumes after the last committed
chunk; consumers reading ``read_committed`` see every record once.

The progress group is named after source, target and range, so running the same
replay again sends nothing, and a different range is a new replay.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from confluent_kafka import Consumer, Producer, TopicPartition

from ingest.errors import ReplayError
from ingest.kafka import client_config, ensure_topic, wait_for_broker
from ingest.rebuild import existing_bronze
from lake import Lake
from lake.names import UTC_MICROS

__all__ = ["RepublishSummary", "republish"]

log = logging.getLogger(__name__)

_WINDOW = 100_000  # bronze offsets read at a time, per partition
_TIMEOUT_S = 30.0


@dataclass
class RepublishSummary:
    """What one :func:`republish` sent."""

    target: str
    records: int = 0
    transactions: int = 0
    per_partition: dict[int, int] = field(default_factory=dict)
    resumed_from: dict[int, int] = field(default_factory=dict)  # progress found at start
    seconds: float = 0.0


def republish(
    lake: Lake,
    topic: str,
    bootstrap_servers: str,
    *,
    to_topic: str | None = None,
    from_offset: int | None = None,
    to_offset: int | None = None,
    from_time: dt.datetime | None = None,
    to_time: dt.datetime | None = None,
    chunk: int = 10_000,
    broker_wait_s: float = 30.0,
    progress: Callable[[int, int], None] | None = None,
    client_options: Mapping[str, Any] | None = None,
) -> RepublishSummary:
    """Re-send ``bronze/<topic>`` to ``to_topic`` (default: ``topic``) exactly once.

    Offsets are inclusive (``from_offset..to_offset``, per partition); times are
    ``from_time <= timestamp < to_time``. A missing target topic is created with
    the source's partition count. ``progress`` gets (records sent, records in all).
    ``client_options`` are the connection's (see :func:`ingest.kafka.client_config`).

    >>> import tempfile
    >>> republish(Lake(tempfile.mkdtemp()), "orders", "127.0.0.1:1")
    Traceback (most recent call last):
    ...
    ingest.errors.ReplayError: no bronze table for topic 'orders' under ...
    """
    t0 = time.monotonic()
    bronze = existing_bronze(lake, topic)
    target = to_topic or topic
    dataset = bronze.to_pyarrow_dataset()
    scope = _filter(from_offset, to_offset, from_time, to_time)
    counts = (
        dataset.to_table(columns=["partition"], filter=scope).column("partition").value_counts()
    )
    per_part = {int(c["values"]): int(c["counts"]) for c in counts.to_pylist()}
    all_parts = pc.unique(dataset.to_table(columns=["partition"]).column("partition"))
    n_src = max(all_parts.to_pylist(), default=-1) + 1
    admin = wait_for_broker(bootstrap_servers, wait_s=broker_wait_s, client_options=client_options)
    n_dst = ensure_topic(
        admin, target, bootstrap_servers=bootstrap_servers, create=True, partitions=max(n_src, 1)
    )
    if n_dst < n_src:
        raise ReplayError(
            f"{target!r} has {n_dst} partitions but {topic!r} had {n_src}; the replay keeps "
            f"its progress per source partition, so it needs at least {n_src}. Replay into "
            f"a new topic (--to-topic) or add partitions to {target!r}"
        )
    same_partition = n_dst == n_src
    key = f"{topic}->{target}|{from_offset}|{to_offset}|{from_time}|{to_time}"
    group = f"eventlake-replay-{hashlib.sha1(key.encode()).hexdigest()[:16]}"
    meta = Consumer(
        client_config(
            bootstrap_servers, client_options, {"group.id": group, "enable.auto.commit": False}
        )
    )
    role = {
        "transactional.id": group,
        "partitioner": "murmur2_random",  # what Java clients use for keyed records
        "linger.ms": 20,
    }
    producer = Producer(client_config(bootstrap_servers, client_options, role))
    summary = RepublishSummary(target)
    try:
        producer.init_transactions(_TIMEOUT_S)
        committed = meta.committed([TopicPartition(target, p) for p in range(n_src)], _TIMEOUT_S)
        done = {tp.partition: tp.offset for tp in committed if tp.offset >= 0}
        summary.resumed_from = dict(done)
        total = sum(per_part.values())
        sent_before = 0
        if done:  # what earlier runs sent counts towards progress
            for p, nxt in done.items():
                sent_before += dataset.count_rows(
                    filter=scope & (pc.field("partition") == p) & (pc.field("offset") < nxt)
                )
        sent = sent_before
        for p in sorted(per_part):
            for rows in _windows(dataset, scope, p, done.get(p, 0)):
                for lo in range(0, rows.num_rows, chunk):
                    part = rows.slice(lo, chunk)
                    producer.begin_transaction()
                    _produce(producer, target, part, p if same_partition else None)
                    nxt = int(part.column("offset")[-1].as_py()) + 1
                    producer.send_offsets_to_transaction(
                        [TopicPartition(target, p, nxt)], meta.consumer_group_metadata(), _TIMEOUT_S
                    )
                    producer.commit_transaction(_TIMEOUT_S)
                    summary.transactions += 1
                    summary.records += part.num_rows
                    summary.per_partition[p] = summary.per_partition.get(p, 0) + part.num_rows
                    sent += part.num_rows
                    if progress is not None:
                        progress(sent, total)
    finally:
        meta.close()
    summary.seconds = time.monotonic() - t0
    log.info(
        "re-published %d records of bronze/%s to %s in %d transactions (%.1f s)",
        summary.records,
        topic,
        target,
        summary.transactions,
        summary.seconds,
    )
    return summary


def _filter(
    from_offset: int | None,
    to_offset: int | None,
    from_time: dt.datetime | None,
    to_time: dt.datetime | None,
) -> pc.Expression:
    f = pc.scalar(True)
    if from_offset is not None:
        f = f & (pc.field("offset") >= from_offset)
    if to_offset is not None:
        f = f & (pc.field("offset") <= to_offset)
    if from_time is not None:
        f = f & (pc.field("timestamp") >= pa.scalar(from_time, UTC_MICROS))
    if to_time is not None:
        f = f & (pc.field("timestamp") < pa.scalar(to_time, UTC_MICROS))
    return f


def _windows(
    dataset: ds.Dataset, scope: pc.Expression, partition: int, start: int
) -> Iterator[pa.Table]:
    """The partition's bronze rows at offsets >= ``start``, in offset order, a window at a time."""
    base = scope & (pc.field("partition") == partition)
    hi = pc.max(dataset.to_table(columns=["offset"], filter=base).column("offset")).as_py()
    lo = start
    while hi is not None and lo <= hi:
        rows = dataset.to_table(
            columns=["offset", "timestamp", "key", "value", "headers"],
            filter=base & (pc.field("offset") >= lo) & (pc.field("offset") < lo + _WINDOW),
        ).sort_by("offset")
        if rows.num_rows:
            yield rows
        lo += _WINDOW


def _produce(producer: Producer, topic: str, rows: pa.Table, partition: int | None) -> None:
    ts = pc.divide(rows.column("timestamp").cast(pa.int64()), 1000).to_pylist()
    keys = rows.column("key").to_pylist()
    values = rows.column("value").to_pylist()
    headers = rows.column("headers").to_pylist()
    for k, v, h, t in zip(keys, values, headers, ts, strict=True):
        kwargs: dict = {"key": k, "value": v}
        if h:
            kwargs["headers"] = [(x["key"], x["value"]) for x in h]
        if t is not None:
            kwargs["timestamp"] = t
        if partition is not None:
            kwargs["partition"] = partition
        while True:
            try:
                producer.produce(topic, **kwargs)
                break
            except BufferError:  # local queue full: let deliveries drain
                producer.poll(0.05)
    producer.flush(_TIMEOUT_S)
