"""`eventlake score`: the scoring engine's Kafka front door.

Runs ingest's consume loop (:class:`ingest.Ingester`: resume from the lake,
micro-batches, catch-up, rebalances) with a :class:`ScoringSink` in place of
bronze: each micro-batch is decoded by ingest's pure :class:`ingest.Decoder`,
scored by one :class:`training.ScoringEngine` per model (several models on one
topic), written to ``predictions/<model>`` exactly once per (model, target,
role, input offset) and published as JSON to ``<model>-predictions`` (serving
and canary predictions; shadow ones are recorded, never published). Each
partition resumes after the last input offset every model has scored.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field

import polars as pl
import pyarrow as pa
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Producer

from ingest import (
    Committed,
    Decoder,
    Ingester,
    IngestOptions,
    SchemaResolver,
    client_config,
    ensure_topic,
    wait_for_broker,
)
from lake import AppendResult, Lake, SchemaStore
from lake.fenced import offset_ranges
from lake.names import SubjectStrategy, layer_of, predictions
from orchestration.serving.metrics import ServingMetrics
from orchestration.serving.online_store import load_online
from training import ModelSpec, ScoringEngine, Target

__all__ = ["ScoringSink", "ScoringSummary", "run_scoring"]

log = logging.getLogger(__name__)


@dataclass
class ScoringSummary:
    """What a scoring run did."""

    events: int = 0
    predictions: int = 0
    versions: set[int] = field(default_factory=set)
    roles: dict[str, int] = field(default_factory=dict)


class ScoringSink:
    """A :class:`ingest.sink.Sink` that scores micro-batches instead of storing them."""

    def __init__(
        self,
        engines: list[ScoringEngine],
        decoder: Decoder,
        producer: Producer,
        *,
        from_beginning: bool,
        metrics: ServingMetrics,
    ) -> None:
        self.engines = engines
        self.decoder = decoder
        self.producer = producer
        self.metrics = metrics
        self.summary = ScoringSummary()
        self.label = ", ".join(f"{predictions(e.spec.name)} ({e.target.label})" for e in engines)
        self.fresh_offset = OFFSET_BEGINNING if from_beginning else OFFSET_END
        self._reloads = {e.spec.name: 0 for e in engines}
        self._subjects = {e.spec.name: layer_of(e.spec.feature_set.source)[1] for e in engines}

    def committed(self, partitions: list[int]) -> dict[int, int | None]:
        """Per partition, the last input offset every model has scored."""
        out: dict[int, int | None] = dict.fromkeys(partitions, None)
        for i, engine in enumerate(self.engines):
            done = engine.committed(self.decoder.topic, partitions)
            for p in partitions:
                a, b = out[p], done[p]
                out[p] = b if i == 0 else (None if a is None or b is None else min(a, b))
        return out

    def take_over(self, partitions: list[int]) -> dict[int, int | None]:
        """:meth:`committed`: each batch is scored and written in one step, so a
        crash leaves nothing half-done."""
        return self.committed(partitions)

    def submit(self, rows: pa.Table, nbytes: int, age_s: float) -> list[Committed]:
        """Decode, score with every model, write and publish; synchronously."""
        started = time.monotonic() - age_s
        t0 = time.monotonic()
        decoded = self.decoder.decode(rows)
        version: int | None = None
        events = 0
        for engine in self.engines:
            name = engine.spec.name
            silver = decoded.silver.get(self._subjects[name])
            if silver is None or silver.num_rows == 0:
                continue
            frame = pl.DataFrame(silver)
            s0 = time.perf_counter()
            try:
                scored = engine.score(frame)
            except Exception:
                self.metrics.errors.labels(name, "kafka", "score").inc()
                raise
            self.metrics.count(scored, time.perf_counter() - s0)
            self.metrics.reloads.labels(name, "kafka").inc(engine.reloads - self._reloads[name])
            self._reloads[name] = engine.reloads
            # Published first (at least once, as before), then the lake (exactly once):
            # a prediction reaches listeners without waiting for the Delta commit.
            self._publish(name, scored.filter(pl.col("role") != "shadow"))
            result = engine.write(scored)
            version = result.version if result and result.version is not None else version
            events = max(events, frame.height)
            self._summarize(scored)
        self.summary.events += events
        done = time.monotonic()
        ranges = offset_ranges(rows, "partition", "offset") if rows.num_rows else {}
        result = AppendResult(version, rows.num_rows, ranges, 0)
        return [
            Committed(self.decoder.topic, result, None, nbytes, done - t0, done - started, done)
        ]

    def _publish(self, model: str, scored: pl.DataFrame) -> None:
        topic = f"{model}-predictions"
        for r in scored.iter_rows(named=True):
            self.producer.produce(
                topic,
                key=(r["entity_key"] or "").encode(),
                value=json.dumps(r, default=str).encode(),
                partition=r["input_partition"],  # the output has as many partitions
            )
        self.producer.poll(0)

    def _summarize(self, scored: pl.DataFrame) -> None:
        s = self.summary
        s.predictions += scored.filter(pl.col("role") != "shadow").height
        s.versions.update(scored["model_version"].unique().to_list())
        for role, n in scored.group_by("role").len().iter_rows():
            s.roles[role] = s.roles.get(role, 0) + n

    def poll(self) -> list[Committed]:
        return []

    def drain(self) -> list[Committed]:
        self.producer.flush(10)
        return []

    @property
    def in_flight(self) -> int:
        return 0

    def close(self) -> None:
        self.producer.flush(10)
        for engine in self.engines:
            engine.close()


def run_scoring(
    *,
    bootstrap_servers: str,
    lake: Lake,
    specs: list[ModelSpec],
    topic: str,
    stop: threading.Event,
    target: Target | None = None,
    group_id: str | None = None,
    from_beginning: bool = False,
    until_caught_up: bool = False,
    registry_url: str | None = None,
    subject_strategy: SubjectStrategy = "topic",
    consumer_options: dict[str, str | int | float | bool] | None = None,
    client_options: dict[str, str | int | float | bool] | None = None,
    broker_wait_s: float = 30.0,
    metrics: ServingMetrics | None = None,
    online_store_url: str | None = None,
    reload_s: float = 2.0,
) -> ScoringSummary:
    """Score ``topic``'s events with every model of ``specs`` (each at ``target``, the
    champion by default, plus its launch's challenger) until ``stop`` is set or, with
    ``until_caught_up``, the high watermarks seen at start are reached. Scorers in one
    group share the online features through the Redis at ``online_store_url``. Aliases
    and launches are re-read every ``reload_s`` seconds.

    >>> run_scoring(bootstrap_servers=b, lake=Lake("./lake"), specs=[eta],  # doctest: +SKIP
    ...             topic="orders", stop=threading.Event(), until_caught_up=True).events
    400
    """
    if not specs:
        raise ValueError("run_scoring needs at least one model spec")
    target = target or Target()
    admin = wait_for_broker(bootstrap_servers, wait_s=broker_wait_s, client_options=client_options)
    n = ensure_topic(admin, topic, bootstrap_servers=bootstrap_servers, create=False)
    for spec in specs:
        out = f"{spec.name}-predictions"
        ensure_topic(admin, out, bootstrap_servers=bootstrap_servers, create=True, partitions=n)
    engines = [
        ScoringEngine(lake, spec, target=target, front_door="kafka", reload_s=reload_s,
                      online=load_online(lake, spec.feature_set, online_store_url))
        for spec in specs
    ]  # fmt: skip
    resolver = SchemaResolver(SchemaStore.open(lake), registry_url)
    sink = ScoringSink(
        engines,
        Decoder(topic, resolver, subject_strategy=subject_strategy),
        Producer(client_config(bootstrap_servers, client_options, {"linger.ms": 5})),
        from_beginning=from_beginning,
        metrics=metrics or ServingMetrics(),
    )
    names = "+".join(sorted(s.name for s in specs))
    options = IngestOptions(
        bootstrap_servers=bootstrap_servers,
        topics=(topic,),
        lake=lake,
        group_id=group_id or f"eventlake-score-{names}-{target.label}",
        consumer_options=consumer_options or {},
        client_options=client_options or {},
        batch_max_records=5_000,
        batch_max_latency_s=0.02,
        broker_wait_s=broker_wait_s,
    )
    log.info("scoring %s with %s at %s", topic, names, target.label)
    Ingester(options, sink=sink).run(until_caught_up=until_caught_up, stop=stop)
    return sink.summary
