"""One ingester, many topics: lists, patterns, topics created later, per-topic
metrics, and a topic whose table cannot be written skipped without stopping the others."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from ingest import Ingester, IngestMetrics, IngestOptions
from lake import Lake
from tests.conftest import bronze
from tests.kafka_data import assert_exactly_once, produce_known


def _create(bootstrap: str, *names: str, partitions: int = 2) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(n, partitions, 1) for n in names]).values():
        f.result(timeout=10)


def _wait_for(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _records(metrics: IngestMetrics, topic: str) -> float:
    value = metrics.registry.get_sample_value("eventlake_ingest_records_total", {"topic": topic})
    return value or 0.0


def test_a_pattern_picks_up_new_topics_and_skips_an_unwritable_one(broker, lake_root):
    bs = broker.bootstrap_servers
    prefix = f"p{uuid.uuid4().hex[:8]}"
    first, second, other = f"{prefix}.orders", f"{prefix}.payments", f"x{prefix}.orders"
    bad = f"{prefix}.bad name!"  # Tansu accepts it; no table may be named so
    _create(bs, first, second, other, bad)
    expected = {t: produce_known(bs, t, 2, 150, seed=i) for i, t in enumerate([first, second])}
    produce_known(bs, other, 2, 10)
    produce_known(bs, bad, 2, 10)
    metrics = IngestMetrics()
    options = IngestOptions(
        bootstrap_servers=bs,
        topic_pattern=f"^{prefix}\\.",
        lake=Lake(lake_root),
        batch_max_records=100,
        pattern_refresh_s=1.0,
    )
    ingester = Ingester(options, metrics=metrics)
    stop = threading.Event()
    result = {}
    thread = threading.Thread(target=lambda: result.update(s=ingester.run(stop=stop)))
    thread.start()
    try:
        _wait_for(
            lambda: _records(metrics, first) == 300 and _records(metrics, second) == 300,
            60,
            "the two matching topics",
        )
        later = f"{prefix}.refunds"  # created while the ingester runs
        _create(bs, later)
        expected[later] = produce_known(bs, later, 2, 40, seed=7)
        _wait_for(lambda: _records(metrics, later) == 80, 60, "the topic created later")
    finally:
        stop.set()
        thread.join(60)
    summary = result["s"]
    for topic, values in expected.items():
        assert_exactly_once(bronze(lake_root, topic), values)
        assert summary.topics[topic].next_offsets == {0: len(values[0]), 1: len(values[1])}
    assert set(summary.topics) == set(expected)  # not the other prefix, not the bad name
    assert summary.records == 300 + 300 + 80
    assert list(summary.skipped) == [bad]
    assert "characters outside Kafka's topic character set" in summary.skipped[bad]
    errors = metrics.registry.get_sample_value(
        "eventlake_ingest_errors_total", {"topic": bad, "kind": "skipped"}
    )
    assert errors == 1.0
    assert not (Path(lake_root) / "bronze" / other).exists()


def test_listed_topics_catch_up_together_with_bounded_open_batches(broker, lake_root):
    bs = broker.bootstrap_servers
    topics = [f"l{uuid.uuid4().hex[:8]}" for _ in range(3)]
    _create(bs, *topics)
    expected = {t: produce_known(bs, t, 2, 500 * (i + 1), seed=i) for i, t in enumerate(topics)}
    metrics = IngestMetrics()
    summary = Ingester(
        IngestOptions(
            bootstrap_servers=bs, topics=tuple(topics), lake=Lake(lake_root), batch_max_records=700
        ),
        metrics=metrics,
    ).run(until_caught_up=True)
    for i, t in enumerate(topics):
        assert_exactly_once(bronze(lake_root, t), expected[t])
        assert summary.topics[t].records == 1000 * (i + 1) == _records(metrics, t)
        # 700 records open across all topics at most: no commit is larger
        assert summary.topics[t].commits >= (1000 * (i + 1)) // 700
    assert summary.records == 6000
    lag = metrics.registry.get_sample_value(
        "eventlake_ingest_lag_records", {"topic": topics[2], "partition": "1"}
    )
    assert lag == 0.0


def test_options_name_what_is_wrong(lake_root):
    lake = Lake(lake_root)
    with pytest.raises(ValueError, match="at least one topic or a topic pattern"):
        IngestOptions(bootstrap_servers="b:9092", lake=lake)
    with pytest.raises(ValueError, match=r"must start with '\^'.*e\.g\. '\^orders'"):
        IngestOptions(bootstrap_servers="b:9092", topic_pattern="orders", lake=lake)
    with pytest.raises(ValueError, match="is not a regular expression"):
        IngestOptions(bootstrap_servers="b:9092", topic_pattern="^orders(", lake=lake)
    with pytest.raises(ValueError, match=r"write topics=\('orders',\)"):
        IngestOptions(bootstrap_servers="b:9092", topics="orders", lake=lake)  # type: ignore[arg-type]
    opts = IngestOptions(bootstrap_servers="b:9092", topics=("a", "b", "a"), lake=lake)
    assert opts.topics == ("a", "b")
