"""`eventlake score`: Kafka events in, the champion's predictions out (Kafka and the lake).

Wires the layers together: ingest's micro-batch and Avro decoder turn Kafka
messages into silver-shaped rows, training's :class:`Scorer` computes features
and predicts, and the predictions go to a Kafka topic (JSON, at least once)
and to ``predictions/<model>`` (exactly once per input offset: on assignment
each partition resumes after the last input offset the lake has scored).
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field

import polars as pl
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, Producer, TopicPartition

from ingest import (
    Decoder,
    MicroBatch,
    SchemaResolver,
    consumer_config,
    ensure_topic,
    high_watermarks,
    wait_for_broker,
)
from lake import Lake, SchemaStore
from lake.names import SubjectStrategy, layer_of
from training import ModelSpec, Scorer

__all__ = ["ScoringSummary", "run_scoring"]

log = logging.getLogger(__name__)


@dataclass
class ScoringSummary:
    """What a scoring run did."""

    events: int = 0
    predictions: int = 0
    versions: set[int] = field(default_factory=set)


def run_scoring(
    *,
    bootstrap_servers: str,
    lake: Lake,
    spec: ModelSpec,
    topic: str,
    stop: threading.Event,
    predictions_topic: str | None = None,
    group_id: str | None = None,
    from_beginning: bool = False,
    until_caught_up: bool = False,
    registry_url: str | None = None,
    subject_strategy: SubjectStrategy = "topic",
    broker_wait_s: float = 30.0,
) -> ScoringSummary:
    """Score ``topic``'s events with ``spec``'s champion until ``stop`` is set
    (or, with ``until_caught_up``, the high watermarks seen at start are reached)."""
    admin = wait_for_broker(bootstrap_servers, wait_s=broker_wait_s)
    out_topic = predictions_topic or f"{spec.name}-predictions"
    n = ensure_topic(admin, topic, bootstrap_servers=bootstrap_servers, create=False)
    ensure_topic(admin, out_topic, bootstrap_servers=bootstrap_servers, create=True, partitions=n)
    subject = layer_of(spec.feature_set.source)[1]
    resolver = SchemaResolver(SchemaStore.open(lake), registry_url)
    decoder = Decoder(topic, resolver, subject_strategy=subject_strategy)
    scorer = Scorer(lake, spec)
    targets = {p: hi for p, (_, hi) in high_watermarks(bootstrap_servers, topic, range(n)).items()}
    position: dict[int, int] = {}

    def on_assign(consumer: Consumer, partitions: list[TopicPartition]) -> None:
        done = scorer.committed(topic, [tp.partition for tp in partitions])
        for tp in partitions:
            c = done[tp.partition]
            tp.offset = (
                c + 1 if c is not None else (OFFSET_BEGINNING if from_beginning else OFFSET_END)
            )
            if c is not None:
                position[tp.partition] = c + 1
        consumer.incremental_assign(partitions)
        log.info(
            "scoring %s partitions %s for %s", topic, [tp.partition for tp in partitions], spec.name
        )

    consumer = Consumer(
        consumer_config(bootstrap_servers, group_id or f"eventlake-score-{spec.name}")
    )
    producer = Producer({"bootstrap.servers": bootstrap_servers, "linger.ms": 5})
    consumer.subscribe([topic], on_assign=on_assign)
    summary = ScoringSummary()
    try:
        while not stop.is_set():
            if until_caught_up and all(position.get(p, 0) >= hi for p, hi in targets.items()):
                break
            msgs = [m for m in consumer.consume(1000, 0.1) if m.error() is None]
            if not msgs:
                continue
            batch = MicroBatch(topic)
            batch.add(msgs)
            rows = batch.take()
            assert rows is not None
            position.update(batch.next_offsets)
            events = decoder.decode(rows).silver.get(subject)
            if events is None or events.num_rows == 0:
                continue
            preds = scorer.score(pl.DataFrame(events))
            for r in preds.iter_rows(named=True):
                producer.produce(
                    out_topic,
                    key=(r["entity_key"] or "").encode(),
                    value=json.dumps(r, default=str).encode(),
                    partition=r["input_partition"],  # the output has as many partitions
                )
            producer.poll(0)
            scorer.write(preds)
            consumer.commit(asynchronous=True)
            summary.events += events.num_rows
            summary.predictions += preds.height
            summary.versions.update(preds["model_version"].unique().to_list())
    finally:
        producer.flush(10)
        consumer.close()
    return summary
