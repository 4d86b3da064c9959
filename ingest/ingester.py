"""The ingester: Kafka topics into their bronze tables, exactly once.

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

One consumer serves any number of topics, listed or matched by a pattern
(topics created later that match are assigned at the next metadata refresh);
each topic is a :class:`~ingest.lane.Lane` with its own micro-batch and sink.
Memory stays what one topic needs however many there are: the open batches of
all topics together hold at most ``batch_max_bytes`` (the largest are committed
first when they reach it), and commits in flight at most twice that. A topic
whose table cannot be written is reported and skipped; the others go on.
"""

from __future__ import annotations

import gc
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    KafkaError,
    Message,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from ingest.committer import Committed, Committer
from ingest.decoder import Decoder
from ingest.errors import IngestError, OffsetOutOfRange
from ingest.expectations import Expectations
from ingest.kafka import (
    consumer_config,
    ensure_topic,
    high_watermarks,
    matching_topics,
    topic_id,
    wait_for_broker,
)
from ingest.lane import Lane, TopicSummary
from ingest.metrics import IngestMetrics
from ingest.options import IngestOptions
from ingest.schema_resolver import SchemaResolver
from ingest.silver_writer import SilverWriter
from ingest.sink import Sink
from lake import (
    BronzeTable,
    SchemaStore,
    ensure_safe_commits,
    ensure_writable,
    silver_window,
    validate_name,
)

__all__ = ["IngestSummary", "Ingester", "TopicSummary"]

log = logging.getLogger(__name__)

_CONSUME_CHUNK = 10_000
_ERROR, _TOPIC = Message.error, Message.topic
_IN_FLIGHT_BATCHES = 2  # bytes in flight across every topic: this many full batches
_MAX_WAIT_S = 0.5  # the loop looks at the stop flag at least this often
_NAMED = {OFFSET_BEGINNING: "beginning", OFFSET_END: "end"}


@dataclass
class IngestSummary:
    """What a run committed, in all and per topic (``topics``); ``skipped`` names each
    topic this run stopped ingesting and why."""

    topics: dict[str, TopicSummary] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    elapsed_s: float = 0.0
    busy_s: float = 0.0
    """From the first record read to the last commit: the steady-state window."""

    @property
    def records(self) -> int:
        """Records committed, every topic together."""
        return sum(t.records for t in self.topics.values())

    @property
    def commits(self) -> int:
        """Delta commits, every topic together."""
        return sum(t.commits for t in self.topics.values())


TopicPartitionKey = tuple[str, int]


class Ingester:
    """Consumes ``options.topics`` (and topics matching ``options.topic_pattern``)
    into ``bronze/<topic>`` tables of ``options.lake``.

    >>> opts = IngestOptions(bootstrap_servers=broker.bootstrap_servers,  # doctest: +SKIP
    ...                      topics=("orders", "payments"), lake=Lake("./lake"))
    >>> Ingester(opts).run(until_caught_up=True).records                 # doctest: +SKIP
    1000

    ``sink`` replaces bronze for a run over one listed topic (the scoring engine's
    Kafka front door).
    """

    def __init__(
        self,
        options: IngestOptions,
        *,
        metrics: IngestMetrics | None = None,
        on_commit: Callable[[Committed], None] | None = None,
        sink: Sink | None = None,
    ) -> None:
        if sink is not None and (len(options.topics) != 1 or options.topic_pattern):
            raise ValueError("a custom sink takes exactly one listed topic and no pattern")
        self.options = options
        self._given_sink = sink
        self.metrics = metrics or IngestMetrics()
        self._on_commit = on_commit
        self._lanes: dict[str, Lane] = {}
        self._rebalanced = False
        self._joined = False  # the first assignment (even an empty one) arrived
        self._fatal: KafkaError | None = None
        self._discard_on_revoke = False
        self._summary = IngestSummary()
        self._last_error_log = 0.0
        self._first_record_at: float | None = None
        self._last_commit_at: float | None = None
        self._consumer: Consumer | None = None
        self._admin: AdminClient | None = None
        self._resolver: SchemaResolver | None = None
        self._open_bytes = 0
        self._in_flight_bytes = 0
        self._single = len(options.topics) == 1 and options.topic_pattern is None

    # -- the run -------------------------------------------------------------

    def run(
        self, *, until_caught_up: bool = False, stop: threading.Event | None = None
    ) -> IngestSummary:
        """Ingest until ``stop`` is set, or until caught up with the high
        watermarks seen at start (``until_caught_up``; topics matching the pattern
        at start); flush and return.
        """
        o = self.options
        started = time.monotonic()
        ensure_writable(o.lake.root)
        ensure_safe_commits(o.lake.root, o.lake.storage_options)
        admin = wait_for_broker(
            o.bootstrap_servers, wait_s=o.broker_wait_s, client_options=o.client_options
        )
        self._admin = admin
        partitions = {
            t: ensure_topic(
                admin,
                t,
                bootstrap_servers=o.bootstrap_servers,
                create=o.create_topic,
                partitions=o.topic_partitions,
            )
            for t in o.topics
        }
        if o.topic_pattern is not None:
            partitions.update(matching_topics(admin, o.topic_pattern))
        for t, n in partitions.items():
            self._open_lane(t, n)
        consumer = Consumer(
            {
                **consumer_config(
                    o.bootstrap_servers,
                    o.group_id,
                    o.consumer_config_overrides(),
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
                targets = {
                    (t, p): mark
                    for t, n in partitions.items()
                    if t in self._lanes
                    for p, mark in self._watermarks(t, range(n)).items()
                }
                log.info(
                    "ingesting %s until caught up with the high watermarks at start, %s",
                    self._names(),
                    {f"{t}[{p}]": hi for (t, p), (_, hi) in targets.items()},
                )
            if targets is not None and self._all_caught_up(targets):
                # Nothing new: leave before joining the group at all. (Leaving a group
                # in the middle of a join can stall the group's next rebalance on Tansu.)
                log.info(
                    "%s: the lake already holds every record up to the high watermarks",
                    self._names(),
                )
                for t, lane in self._lanes.items():  # a crashed run's silver still counts
                    lane.sink.take_over(list(range(partitions[t])))
                return self._finish(started)
            consumer.subscribe(
                o.subscription,
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_lost,
            )
            self._loop(consumer, targets, stop or threading.Event())
            self._flush_all()
        except BaseException:
            self._discard_on_revoke = True  # leave uncommitted records to the next run
            raise
        finally:
            consumer.close()
            self._consumer = None
            for lane in self._lanes.values():
                lane.sink.close()
        return self._finish(started)

    def _names(self) -> str:
        o = self.options
        return ", ".join([*o.topics, *([o.topic_pattern] if o.topic_pattern else [])])

    def _open_lane(self, topic: str, n_partitions: int | None = None) -> Lane | None:
        """The lane of ``topic``, opened on first use; None if the topic is skipped."""
        lane = self._lanes.get(topic)
        if lane is not None or topic in self._summary.skipped:
            return lane
        try:
            sink = self._given_sink or self._bronze_sink(topic, n_partitions)
        except Exception as e:
            if self._single:
                raise  # the run's only topic: nothing to go on with
            self._skip(topic, f"its table cannot be opened: {e}")
            return None
        lane = self._lanes[topic] = Lane(topic, sink)
        self._summary.topics[topic] = lane.summary
        return lane

    def _bronze_sink(self, topic: str, n_partitions: int | None) -> Committer:
        o = self.options
        validate_name(topic)  # a pattern can match names no table can have
        assert self._admin is not None
        table = BronzeTable.open(o.lake, topic)
        if n_partitions is None:
            n_partitions = ensure_topic(
                self._admin, topic, bootstrap_servers=o.bootstrap_servers, create=False
            )
        source = topic_id(self._admin, topic)
        if source is not None:
            table.bind_source(source, range(n_partitions))
        silver = None
        if o.decode_avro:
            if self._resolver is None:
                self._resolver = SchemaResolver(SchemaStore.open(o.lake), o.registry_url)
            decoder = Decoder(
                topic,
                self._resolver,
                subject_strategy=o.subject_strategy,
                expectations=Expectations(o.expectations, history=partial(silver_window, o.lake))
                if o.expectations
                else None,
            )
            silver = SilverWriter(o.lake, decoder)  # repaired per partition on assignment
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

    def _skip(self, topic: str, why: str) -> None:
        """Stop ingesting ``topic`` (its records stay in Kafka); the other topics go on."""
        self._summary.skipped[topic] = why
        self.metrics.errors.labels(topic=topic, kind="skipped").inc()
        log.error("%s: skipped, %s; the other topics go on", topic, why)
        lane = self._lanes.pop(topic, None)
        if lane is None:
            return
        self._open_bytes -= lane.batch.bytes
        lane.batch.take()
        if self._consumer is not None and lane.owned:
            self._consumer.pause([TopicPartition(topic, p) for p in lane.owned])
        try:
            lane.sink.close()
        except Exception as e:
            log.debug("closing %s failed: %s", topic, e)
        if not self._lanes and not self.options.topic_pattern:
            raise IngestError(
                f"every topic of this run was skipped ({self._summary.skipped}); "
                "fix what the log says and start again"
            )

    def _finish(self, started: float) -> IngestSummary:
        self._summary.elapsed_s = time.monotonic() - started
        if self._first_record_at is not None and self._last_commit_at is not None:
            self._summary.busy_s = self._last_commit_at - self._first_record_at
        return self._summary

    def _loop(
        self,
        consumer: Consumer,
        targets: dict[TopicPartitionKey, tuple[int, int]] | None,
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
        targets: dict[TopicPartitionKey, tuple[int, int]] | None,
        stop: threading.Event,
    ) -> None:
        o = self.options
        last_delta_check = 0.0
        while not stop.is_set():
            # consume() returns when it has ``room`` records or the time is up, not at the
            # first record: an empty batch waits at most the latency bound too, so a lone
            # record is committed within twice the bound (what a 20 ms scorer needs).
            oldest = max((lane.batch.age() for lane in self._lanes.values()), default=0.0)
            wait = o.batch_max_latency_s - oldest
            fullest = max((lane.batch.records for lane in self._lanes.values()), default=0)
            room = max(1, min(_CONSUME_CHUNK, o.batch_max_records - fullest))
            messages = consumer.consume(num_messages=room, timeout=min(max(wait, 0.0), _MAX_WAIT_S))
            if self._fatal is not None:
                raise IngestError(f"fatal Kafka error: {self._fatal.str()}")
            if messages:
                if self._first_record_at is None:
                    self._first_record_at = time.monotonic()
                self._add(self._usable(messages))
            # Pipelined: the commits run while we consume.
            for lane in sorted(self._lanes.values(), key=lambda x: -x.batch.bytes):
                batch = lane.batch
                if batch.records and (
                    batch.records >= o.batch_max_records
                    or self._open_bytes >= o.batch_max_bytes  # the largest batches go first
                    or batch.age() >= o.batch_max_latency_s
                ):
                    self._flush(lane, wait=False)
                elif lane.sink.in_flight:
                    self._settle(lane, lane.sink.poll)
            if targets is not None and self._joined and self._owned_caught_up(targets):
                self._flush_all()
                now = time.monotonic()
                owned = sum(len(lane.owned) for lane in self._lanes.values())
                if now - last_delta_check >= _MAX_WAIT_S or owned == len(targets):
                    last_delta_check = now
                    if self._all_caught_up(targets):
                        log.info(
                            "%s: caught up with the high watermarks seen at start", self._names()
                        )
                        return

    def _add(self, messages: list[Message]) -> None:
        """Append messages to their topics' batches."""
        if not messages:
            return
        if len(self._lanes) == 1 and not self._summary.skipped:
            groups = {next(iter(self._lanes)): messages}  # only its partitions are assigned
        else:  # consume() returns runs of one partition's records: group by run, in C
            groups = {}
            for topic, run in itertools.groupby(messages, _TOPIC):
                groups.setdefault(topic or "", []).extend(run)
        for topic, group in groups.items():
            lane = self._lanes.get(topic)
            if lane is None:
                continue  # skipped: its partitions are paused, stray records dropped
            before = lane.batch.bytes
            lane.batch.add(group)
            self._open_bytes += lane.batch.bytes - before
            lane.position.update(
                {p: n for p, n in lane.batch.next_offsets.items() if p in lane.owned}
            )

    def _usable(self, messages: list[Message]) -> list[Message]:
        """Drop error events (raising on fatal ones) and records of lost partitions."""
        if any(map(_ERROR, messages)):  # C-level scan; errors are rare
            errors = [m for m in messages if m.error() is not None]
            for m in errors:
                self._on_message_error(m)
            messages = [m for m in messages if m.error() is None]
        if self._rebalanced:
            self._rebalanced = False
            messages = [m for m in messages if self._owns(m.topic() or "", m.partition() or 0)]
        return messages

    def _owns(self, topic: str, partition: int) -> bool:
        lane = self._lanes.get(topic)
        return lane is not None and partition in lane.owned

    def _on_message_error(self, m: Message) -> None:
        err = m.error()
        assert err is not None
        topic = m.topic() or ""
        if topic in self._summary.skipped:
            return
        self.metrics.errors.labels(topic=topic, kind=err.name()).inc()
        if err.code() in (KafkaError._AUTO_OFFSET_RESET, KafkaError.OFFSET_OUT_OF_RANGE):
            raise OffsetOutOfRange(topic, m.partition() or 0, err.str())
        if err.fatal():
            raise IngestError(f"fatal Kafka error on {topic}: {err.str()}")
        if err.code() != KafkaError._PARTITION_EOF:
            log.warning("%s: Kafka error %s (the client retries)", topic, err.str())

    def _flush_all(self, *, wait: bool = True) -> None:
        """Hand every open micro-batch to its sink; with ``wait``, also wait until
        everything handed over is committed."""
        for lane in list(self._lanes.values()):
            self._flush(lane, wait=False)  # every topic's commit starts before any wait
        if wait:
            for lane in list(self._lanes.values()):
                self._settle(lane, lane.sink.drain)

    def _flush(self, lane: Lane, *, wait: bool = True) -> None:
        """Hand ``lane``'s open micro-batch to its sink (within the in-flight limit);
        with ``wait``, also wait until everything handed over is committed. Kafka
        offsets follow each Delta commit."""
        batch = lane.batch
        if batch.records:
            self._make_room(batch.bytes)
            age, nbytes = batch.age(), batch.bytes
            self._open_bytes -= nbytes
            rows = batch.take()
            assert rows is not None
            self._in_flight_bytes += nbytes
            self._settle(lane, lambda: lane.sink.submit(rows, nbytes, age))
        if lane.topic in self._lanes:
            self._settle(lane, lane.sink.drain if wait else lane.sink.poll)

    def _make_room(self, nbytes: int) -> None:
        """Wait until ``nbytes`` more fit in the bytes in flight across every topic
        (committing the oldest of the busiest topic first)."""
        budget = _IN_FLIGHT_BATCHES * self.options.batch_max_bytes
        while self._in_flight_bytes and self._in_flight_bytes + nbytes > budget:
            busy = [lane for lane in self._lanes.values() if lane.sink.in_flight]
            if not busy:
                self._in_flight_bytes = 0  # the sinks of skipped topics are gone
                return
            busiest = max(busy, key=lambda lane: lane.sink.in_flight)
            self._settle(busiest, busiest.sink.drain)

    def _settle(self, lane: Lane, step: Callable[[], list[Committed]]) -> None:
        """Run a sink step and record its commits; a failing table skips its topic."""
        try:
            done = step()
        except (IngestError, KeyboardInterrupt):
            raise
        except Exception as e:
            if self._single:
                raise  # the run's only topic: nothing to go on with
            self._skip(lane.topic, f"committing to its table failed: {e!r}")
            return
        for c in done:
            self._committed(lane, c)

    def _committed(self, lane: Lane, c: Committed) -> None:
        self._in_flight_bytes = max(0, self._in_flight_bytes - c.nbytes)
        s, result = lane.summary, c.result
        gc.collect(2 if s.commits % 100 == 99 else 1)
        if result.version is None:
            return
        s.records += result.rows
        s.commits += 1
        s.last_version = result.version
        self._last_commit_at = c.done_at
        for p, (_, last) in result.ranges.items():
            s.next_offsets[p] = last + 1
        self._commit_kafka_offsets(lane, result.ranges)
        self._record_metrics(lane, c)
        log.info(
            "%s v%d: %d records, partitions %s, commit %.0f ms, batch latency %.0f ms%s",
            lane.sink.label,
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

    def _commit_kafka_offsets(self, lane: Lane, ranges: dict[int, tuple[int, int]]) -> None:
        consumer = self._consumer
        owned = [
            TopicPartition(lane.topic, p, last + 1)
            for p, (_, last) in ranges.items()
            if p in lane.owned
        ]
        if consumer is None or not owned:
            return
        try:
            consumer.commit(offsets=owned, asynchronous=True)
        except Exception as e:  # lag monitoring only: never fail a run for it
            log.debug("Kafka offset commit failed (lag metrics only): %s", e)

    def _record_metrics(self, lane: Lane, c: Committed) -> None:
        m, topic, result = self.metrics, lane.topic, c.result
        assert result.version is not None
        m.records.labels(topic=topic).inc(result.rows)
        m.bytes.labels(topic=topic).inc(c.nbytes)
        m.batches.labels(topic=topic).inc()
        m.delta_version.labels(topic=topic).set(result.version)
        m.commit_seconds.labels(topic=topic).observe(c.commit_s)
        m.batch_latency_seconds.labels(topic=topic).observe(c.latency_s)
        for q in c.decoded.quality if c.decoded is not None else ():
            m.quality_records.labels(subject=q.subject, expectation=q.expectation).inc(q.records)
            m.quality_failed.labels(
                subject=q.subject, expectation=q.expectation, severity=q.severity
            ).inc(q.failed)
        consumer = self._consumer
        if consumer is None:
            return
        for p in list(lane.owned):
            try:
                _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), cached=True)
            except Exception:
                continue
            if high >= 0 and p in lane.position:
                m.lag.labels(topic=topic, partition=str(p)).set(max(0, high - lane.position[p]))

    # -- caught up -----------------------------------------------------------

    def _watermarks(self, topic: str, partitions: Iterable[int]) -> dict[int, tuple[int, int]]:
        o = self.options
        isolation = str(o.consumer_options.get("isolation.level", "read_committed"))
        return high_watermarks(
            o.bootstrap_servers,
            topic,
            partitions,
            isolation_level=isolation,
            client_options=o.client_options,
        )

    def _owned_caught_up(self, targets: dict[TopicPartitionKey, tuple[int, int]]) -> bool:
        for lane in self._lanes.values():
            for p in lane.owned:
                low, high = targets.get((lane.topic, p), (0, 0))
                if high > low and lane.position.get(p, low) < high:
                    return False
        return True

    def _all_caught_up(self, targets: dict[TopicPartitionKey, tuple[int, int]]) -> bool:
        """Partitions not owned here are judged by the offsets the lake holds;
        skipped topics no longer count."""
        done = True
        for topic, lane in list(self._lanes.items()):
            others = [p for t, p in targets if t == topic and p not in lane.owned]
            if not others:
                continue
            for p, c in lane.sink.committed(others).items():
                low, high = targets[(topic, p)]
                self._check_in_log(topic, p, c, low, high)
                done = done and (low if c is None else c + 1) >= high
        return done

    @staticmethod
    def _check_in_log(
        topic: str, partition: int, committed: int | None, low: int, high: int
    ) -> None:
        """The next offset must lie in Kafka's log: never jump over records or re-read."""
        if committed is None:
            return
        if not low <= committed + 1 <= high:
            raise OffsetOutOfRange(
                topic,
                partition,
                f"the lake holds offsets up to {committed}, the Kafka log spans {low}..{high - 1}",
            )

    # -- rebalancing ---------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        by_topic: dict[str, list[TopicPartition]] = {}
        for tp in partitions:
            by_topic.setdefault(tp.topic, []).append(tp)
        skipped: list[TopicPartition] = []
        for topic, tps in by_topic.items():
            lane = self._open_lane(topic)
            if lane is None:
                for tp in tps:
                    tp.offset = OFFSET_END  # paused below: nothing is read, nothing reset
                skipped += tps
            else:
                self._position_lane(lane, tps)
        consumer.incremental_assign(partitions)
        if skipped:
            consumer.pause(skipped)  # held, never read: their records stay in Kafka
        self._joined = True
        self._rebalanced = True

    def _position_lane(self, lane: Lane, partitions: list[TopicPartition]) -> None:
        committed = lane.sink.take_over([tp.partition for tp in partitions])
        resumed = [p for p, c in committed.items() if c is not None]
        if resumed:
            marks = self._watermarks(lane.topic, resumed)
            for p in resumed:
                self._check_in_log(lane.topic, p, committed[p], *marks[p])
        start: dict[int, int | str] = {}
        for tp in partitions:
            c = committed[tp.partition]
            tp.offset = c + 1 if c is not None else lane.sink.fresh_offset
            if c is not None:
                lane.position[tp.partition] = c + 1
            start[tp.partition] = c + 1 if c is not None else _NAMED.get(tp.offset, tp.offset)
        lane.owned.update(tp.partition for tp in partitions)
        log.info(
            "%s: assigned partitions %s; resuming from the lake at %s",
            lane.topic,
            sorted(start),
            start,
        )

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for lane in self._lanes_of(partitions):
            if self._discard_on_revoke:
                self._drop(lane, partitions)
            else:
                self._flush(lane)  # hand over nothing half-done
        self._release(consumer, partitions, "revoked")

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        dropped = sum(self._drop(lane, partitions) for lane in self._lanes_of(partitions))
        self._release(
            consumer, partitions, f"lost ({dropped} uncommitted records left to the new owner)"
        )

    def _lanes_of(self, partitions: list[TopicPartition]) -> list[Lane]:
        topics = {tp.topic for tp in partitions}
        return [lane for t, lane in self._lanes.items() if t in topics]

    def _drop(self, lane: Lane, partitions: list[TopicPartition]) -> int:
        before = lane.batch.bytes
        dropped = lane.batch.drop(tp.partition for tp in partitions if tp.topic == lane.topic)
        self._open_bytes -= before - lane.batch.bytes
        return dropped

    def _release(self, consumer: Consumer, partitions: list[TopicPartition], how: str) -> None:
        consumer.incremental_unassign(partitions)
        for tp in partitions:
            lane = self._lanes.get(tp.topic)
            if lane is not None:
                lane.owned.discard(tp.partition)
                lane.position.pop(tp.partition, None)
        self._rebalanced = True
        if partitions:
            log.info(
                "partitions %s %s",
                " ".join(sorted(f"{tp.topic}[{tp.partition}]" for tp in partitions)),
                how,
            )

    def _on_error(self, err: KafkaError) -> None:
        self.metrics.errors.labels(topic="", kind=err.name()).inc()
        if err.fatal():
            self._fatal = err
            return
        now = time.monotonic()
        if now - self._last_error_log >= 5.0:  # librdkafka reconnects with backoff itself
            self._last_error_log = now
            log.warning("Kafka: %s (reconnecting with backoff; nothing is skipped)", err.str())
