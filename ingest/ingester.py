"""The ingester: one Kafka topic into its bronze table, exactly once.

The consume loop (resume from the lake, micro-batches, catch-up, rebalances)
is the one every consumer of eventlake runs: what a micro-batch becomes is a
:class:`~ingest.sink.Sink`, bronze (and silver) by default, predictions for the
Kafka front door of the scoring engine.

How exactly-once holds (DESIGN.md invariant 1):

- On every assignment, each partition is positioned at the offset after the
  last one committed to ``bronze/<topic>``, read from the Delta log's ``txn``
  actions. Kafka's group offsets are never used to resume.
- Each micro-batch is one Delta commit carrying a ``txn`` action per partition
  (the last offset written); :class:`lake.BronzeTable` fences off any offset
  already committed and retries when a concurrent commit touched the same
  partitions.
- Kafka group offsets are committed after the Delta commit, for lag monitoring.

Kill the process at any moment: what was committed is in the lake with its
offsets, what was not is read again on restart.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    KafkaError,
    Message,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from ingest.batch import MicroBatch
from ingest.committer import Committed, Committer
from ingest.decoder import Decoder
from ingest.errors import IngestError, OffsetOutOfRange
from ingest.kafka import (
    consumer_config,
    ensure_topic,
    high_watermarks,
    topic_id,
    wait_for_broker,
)
from ingest.metrics import IngestMetrics
from ingest.options import IngestOptions
from ingest.schema_resolver import SchemaResolver
from ingest.silver_writer import SilverWriter
from ingest.sink import Sink
from lake import BronzeTable, SchemaStore, ensure_writable

__all__ = ["IngestSummary", "Ingester"]

log = logging.getLogger(__name__)

_CONSUME_CHUNK = 10_000
_ERROR = Message.error
_MAX_WAIT_S = 0.5  # the loop looks at the stop flag at least this often
_NAMED = {OFFSET_BEGINNING: "beginning", OFFSET_END: "end"}


@dataclass
class IngestSummary:
    """What a run committed: records, Delta commits, last version, next offset per partition."""

    topic: str
    records: int = 0
    commits: int = 0
    last_version: int | None = None
    next_offsets: dict[int, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    busy_s: float = 0.0
    """From the first record read to the last commit: the steady-state window."""


class Ingester:
    """Consumes ``options.topic`` into ``bronze/<topic>`` of ``options.lake``.

    >>> opts = IngestOptions(bootstrap_servers=broker.bootstrap_servers,  # doctest: +SKIP
    ...                      topic="orders", lake=Lake("./lake"))
    >>> Ingester(opts).run(until_caught_up=True).records                 # doctest: +SKIP
    1000
    """

    def __init__(
        self,
        options: IngestOptions,
        *,
        metrics: IngestMetrics | None = None,
        on_commit: Callable[[Committed], None] | None = None,
        sink: Sink | None = None,
    ) -> None:
        self.options = options
        self._given_sink = sink
        self.metrics = metrics or IngestMetrics()
        self._on_commit = on_commit
        self._batch = MicroBatch(options.topic)
        self._owned: set[int] = set()
        self._position: dict[int, int] = {}
        self._rebalanced = False
        self._joined = False  # the first assignment (even an empty one) arrived
        self._fatal: KafkaError | None = None
        self._discard_on_revoke = False
        self._summary = IngestSummary(options.topic)
        self._last_error_log = 0.0
        self._first_record_at: float | None = None
        self._last_commit_at: float | None = None
        self._consumer: Consumer | None = None
        self._committer: Sink | None = None

    # -- the run -------------------------------------------------------------

    def run(
        self, *, until_caught_up: bool = False, stop: threading.Event | None = None
    ) -> IngestSummary:
        """Ingest until ``stop`` is set, or until caught up with the high
        watermarks seen at start (``until_caught_up``); flush and return.
        """
        o = self.options
        started = time.monotonic()
        ensure_writable(o.lake.root)
        admin = wait_for_broker(
            o.bootstrap_servers, wait_s=o.broker_wait_s, client_options=o.client_options
        )
        n_partitions = ensure_topic(
            admin,
            o.topic,
            bootstrap_servers=o.bootstrap_servers,
            create=o.create_topic,
            partitions=o.topic_partitions,
        )
        self._committer = self._given_sink or self._bronze_sink(admin, n_partitions)
        consumer = Consumer(
            {
                **consumer_config(
                    o.bootstrap_servers,
                    o.group_id,
                    o.consumer_options,
                    self._on_error,
                    o.client_options,
                ),
                "logger": logging.getLogger("librdkafka"),
            }
        )
        self._consumer = consumer
        try:
            targets = None
            if until_caught_up:
                targets = self._watermarks(range(n_partitions))
            if targets is not None:
                log.info(
                    "ingesting %s until caught up with the high watermarks at start, %s",
                    o.topic,
                    {p: hi for p, (_, hi) in targets.items()},
                )
            if targets is not None and self._all_caught_up(targets):
                # Nothing new: leave before joining the group at all. (Leaving a group
                # in the middle of a join can stall the group's next rebalance on Tansu.)
                log.info(
                    "%s: the lake already holds every record up to the high watermarks", o.topic
                )
                return self._finish(started)
            consumer.subscribe(
                [o.topic],
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_lost,
            )
            self._loop(consumer, targets, stop or threading.Event())
            self._flush()
        except BaseException:
            self._discard_on_revoke = True  # leave uncommitted records to the next run
            raise
        finally:
            consumer.close()
            self._consumer = None
            self._committer.close()
        return self._finish(started)

    def _bronze_sink(self, admin: AdminClient, n_partitions: int) -> Committer:
        o = self.options
        table = BronzeTable.open(o.lake, o.topic)
        source = topic_id(admin, o.topic)
        if source is not None:
            table.bind_source(source, range(n_partitions))
        silver = None
        if o.decode_avro:
            resolver = SchemaResolver(SchemaStore.open(o.lake), o.registry_url)
            decoder = Decoder(o.topic, resolver, subject_strategy=o.subject_strategy)
            silver = SilverWriter(o.lake, decoder)
            silver.repair(table, range(n_partitions))
        return Committer(
            table,
            {
                "eventlake.writer": "ingest",
                "eventlake.group": o.group_id,
                "eventlake.pid": str(os.getpid()),
            },
            silver,
            maintain_every=o.maintain_every,
        )

    def _finish(self, started: float) -> IngestSummary:
        self._summary.elapsed_s = time.monotonic() - started
        if self._first_record_at is not None and self._last_commit_at is not None:
            self._summary.busy_s = self._last_commit_at - self._first_record_at
        return self._summary

    def _loop(
        self,
        consumer: Consumer,
        targets: dict[int, tuple[int, int]] | None,
        stop: threading.Event,
    ) -> None:
        # Each consumed record allocates a handful of acyclic objects; automatic
        # cyclic GC over them cost up to 40% of the per-record work (measured).
        # Collect explicitly instead: the young generations after every commit.
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            self._consume_until_done(consumer, targets, stop)
        finally:
            if gc_was_enabled:
                gc.enable()

    def _consume_until_done(
        self,
        consumer: Consumer,
        targets: dict[int, tuple[int, int]] | None,
        stop: threading.Event,
    ) -> None:
        o = self.options
        batch = self._batch
        last_delta_check = 0.0
        while not stop.is_set():
            # consume() returns when it has ``room`` records or the time is up, not at the
            # first record: an empty batch waits at most the latency bound too, so a lone
            # record is committed within twice the bound (what a 20 ms scorer needs).
            if batch.started is None:
                wait = o.batch_max_latency_s
            else:
                wait = o.batch_max_latency_s - batch.age()
            room = min(_CONSUME_CHUNK, o.batch_max_records - batch.records)
            messages = consumer.consume(num_messages=room, timeout=min(max(wait, 0.0), _MAX_WAIT_S))
            if self._fatal is not None:
                raise IngestError(f"fatal Kafka error: {self._fatal.str()}")
            if messages:
                if self._first_record_at is None:
                    self._first_record_at = time.monotonic()
                batch.add(self._usable(messages))
                self._position.update(
                    {p: n for p, n in batch.next_offsets.items() if p in self._owned}
                )
            full = (
                batch.records >= o.batch_max_records
                or batch.bytes >= o.batch_max_bytes
                or (batch.records and batch.age() >= o.batch_max_latency_s)
            )
            if full:
                self._flush(wait=False)  # pipelined: the commit runs while we consume
            elif self._committer is not None and self._committer.busy:
                for c in self._committer.poll():
                    self._committed(c)
            if targets is not None and self._joined and self._owned_caught_up(targets):
                self._flush()
                now = time.monotonic()
                if now - last_delta_check >= _MAX_WAIT_S or len(self._owned) == len(targets):
                    last_delta_check = now
                    if self._all_caught_up(targets):
                        log.info("%s: caught up with the high watermarks seen at start", o.topic)
                        return

    def _usable(self, messages: list[Message]) -> list[Message]:
        """Drop error events (raising on fatal ones) and records of lost partitions."""
        if any(map(_ERROR, messages)):  # C-level scan; errors are rare
            errors = [m for m in messages if m.error() is not None]
            for m in errors:
                self._on_message_error(m)
            messages = [m for m in messages if m.error() is None]
        if self._rebalanced:
            self._rebalanced = False
            messages = [m for m in messages if m.partition() in self._owned]
        return messages

    def _on_message_error(self, m: Message) -> None:
        err = m.error()
        assert err is not None
        self.metrics.errors.labels(topic=self.options.topic, kind=err.name()).inc()
        if err.code() in (KafkaError._AUTO_OFFSET_RESET, KafkaError.OFFSET_OUT_OF_RANGE):
            raise OffsetOutOfRange(self.options.topic, m.partition() or 0, err.str())
        if err.fatal():
            raise IngestError(f"fatal Kafka error on {self.options.topic}: {err.str()}")
        if err.code() != KafkaError._PARTITION_EOF:
            log.warning("%s: Kafka error %s (the client retries)", self.options.topic, err.str())

    def _flush(self, *, wait: bool = True) -> None:
        """Hand the open micro-batch to the committer; with ``wait``, also wait until
        everything handed over is committed. Kafka offsets follow each Delta commit.
        """
        assert self._committer is not None
        batch = self._batch
        done: list[Committed] = []
        if batch.records:
            age, nbytes = batch.age(), batch.bytes
            rows = batch.take()
            assert rows is not None
            done += self._committer.submit(rows, nbytes, age)
        done += self._committer.drain() if wait else self._committer.poll()
        for c in done:
            self._committed(c)

    def _committed(self, c: Committed) -> None:
        s, result = self._summary, c.result
        gc.collect(2 if s.commits % 100 == 99 else 1)
        if result.version is None:
            return
        s.records += result.rows
        s.commits += 1
        s.last_version = result.version
        self._last_commit_at = c.done_at
        for p, (_, last) in result.ranges.items():
            s.next_offsets[p] = last + 1
        self._commit_kafka_offsets(result.ranges)
        self._record_metrics(result.rows, c.nbytes, result.version, c.commit_s, c.latency_s)
        log.info(
            "%s v%d: %d records, partitions %s, commit %.0f ms, batch latency %.0f ms%s",
            self._committer.label if self._committer is not None else self.options.topic,
            result.version,
            result.rows,
            " ".join(f"{p}:{a}-{b}" for p, (a, b) in sorted(result.ranges.items())),
            c.commit_s * 1000,
            c.latency_s * 1000,
            f"; {c.decoded}" if c.decoded is not None else "",
        )
        if self._on_commit is not None:
            try:
                self._on_commit(c)
            except Exception as e:  # a report must never stop ingest
                log.warning("reporting commit v%d failed (ingest goes on): %s", result.version, e)

    def _commit_kafka_offsets(self, ranges: dict[int, tuple[int, int]]) -> None:
        consumer = self._consumer
        owned = [
            TopicPartition(self.options.topic, p, last + 1)
            for p, (_, last) in ranges.items()
            if p in self._owned
        ]
        if consumer is None or not owned:
            return
        try:
            consumer.commit(offsets=owned, asynchronous=True)
        except Exception as e:  # lag monitoring only: never fail a run for it
            log.debug("Kafka offset commit failed (lag metrics only): %s", e)

    def _record_metrics(
        self, rows: int, nbytes: int, version: int, commit_s: float, latency_s: float
    ) -> None:
        m, topic = self.metrics, self.options.topic
        m.records.labels(topic=topic).inc(rows)
        m.bytes.labels(topic=topic).inc(nbytes)
        m.batches.labels(topic=topic).inc()
        m.delta_version.labels(topic=topic).set(version)
        m.commit_seconds.labels(topic=topic).observe(commit_s)
        m.batch_latency_seconds.labels(topic=topic).observe(latency_s)
        consumer = self._consumer
        if consumer is None:
            return
        for p in list(self._owned):
            try:
                _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), cached=True)
            except Exception:
                continue
            if high >= 0 and p in self._position:
                m.lag.labels(topic=topic, partition=str(p)).set(max(0, high - self._position[p]))

    # -- caught up -----------------------------------------------------------

    def _watermarks(self, partitions: Iterable[int]) -> dict[int, tuple[int, int]]:
        o = self.options
        isolation = str(o.consumer_options.get("isolation.level", "read_committed"))
        return high_watermarks(
            o.bootstrap_servers,
            o.topic,
            partitions,
            isolation_level=isolation,
            client_options=o.client_options,
        )

    def _owned_caught_up(self, targets: dict[int, tuple[int, int]]) -> bool:
        for p in self._owned:
            low, high = targets.get(p, (0, 0))
            if high > low and self._position.get(p, low) < high:
                return False
        return True

    def _all_caught_up(self, targets: dict[int, tuple[int, int]]) -> bool:
        """Partitions not owned here are judged by the offsets the lake holds."""
        assert self._committer is not None
        others = [p for p in targets if p not in self._owned]
        if not others:
            return True
        done = True
        for p, c in self._committer.committed(others).items():
            low, high = targets[p]
            self._check_in_log(p, c, low, high)
            done = done and (low if c is None else c + 1) >= high
        return done

    def _check_in_log(self, partition: int, committed: int | None, low: int, high: int) -> None:
        """The next offset must lie in Kafka's log: never jump over records or re-read."""
        if committed is None:
            return
        if not low <= committed + 1 <= high:
            raise OffsetOutOfRange(
                self.options.topic,
                partition,
                f"the lake holds offsets up to {committed}, the Kafka log spans {low}..{high - 1}",
            )

    # -- rebalancing ---------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        assert self._committer is not None
        committed = self._committer.committed([tp.partition for tp in partitions])
        resumed = [p for p, c in committed.items() if c is not None]
        if resumed:
            marks = self._watermarks(resumed)
            for p in resumed:
                self._check_in_log(p, committed[p], *marks[p])
        start: dict[int, int | str] = {}
        for tp in partitions:
            c = committed[tp.partition]
            tp.offset = c + 1 if c is not None else self._committer.fresh_offset
            if c is not None:
                self._position[tp.partition] = c + 1
            start[tp.partition] = c + 1 if c is not None else _NAMED.get(tp.offset, tp.offset)
        consumer.incremental_assign(partitions)
        self._joined = True
        self._owned.update(tp.partition for tp in partitions)
        self._rebalanced = True
        if partitions:
            log.info(
                "%s: assigned partitions %s; resuming from the lake at %s",
                self.options.topic,
                sorted(start),
                start,
            )

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self._discard_on_revoke:
            self._batch.drop(tp.partition for tp in partitions)
        else:
            self._flush()  # hand over nothing half-done
        self._release(consumer, partitions, "revoked")

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        dropped = self._batch.drop(tp.partition for tp in partitions)
        self._release(
            consumer, partitions, f"lost ({dropped} uncommitted records left to the new owner)"
        )

    def _release(self, consumer: Consumer, partitions: list[TopicPartition], how: str) -> None:
        consumer.incremental_unassign(partitions)
        for tp in partitions:
            self._owned.discard(tp.partition)
            self._position.pop(tp.partition, None)
        self._rebalanced = True
        if partitions:
            log.info(
                "%s: partitions %s %s",
                self.options.topic,
                sorted(tp.partition for tp in partitions),
                how,
            )

    def _on_error(self, err: KafkaError) -> None:
        self.metrics.errors.labels(topic=self.options.topic, kind=err.name()).inc()
        if err.fatal():
            self._fatal = err
            return
        now = time.monotonic()
        if now - self._last_error_log >= 5.0:  # librdkafka reconnects with backoff itself
            self._last_error_log = now
            log.warning("Kafka: %s (reconnecting with backoff; nothing is skipped)", err.str())
