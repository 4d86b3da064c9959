"""Re-publishing bronze to Kafka after the broker lost everything (invariant 4)."""

from __future__ import annotations

import subprocess

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from ingest import EmbeddedBroker, Ingester, IngestOptions, Record, ReplayError, produce
from ingest.republish import republish
from lake import Lake
from tests.conftest import CLI, bronze, ingest_env

PARTITIONS = 3
PER_PARTITION = 400


def _records() -> list[Record]:
    out = []
    for i in range(PER_PARTITION):
        for p in range(PARTITIONS):
            headers = [("trace", f"t{i}".encode()), ("empty", b"")] if i % 3 == 0 else None
            key = None if i % 5 == 0 else f"user-{i % 7}".encode()
            value = None if i % 50 == 7 else f"{p}:{i}".encode() * (1 + i % 4)
            out.append(Record(key, value, headers, p, 1_700_000_000_000 + i * 1000 + p))
    return out


def _read_all(bootstrap: str, topic: str, partitions: int, expected: int) -> dict[int, list]:
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "verify",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    got: dict[int, list] = {p: [] for p in range(partitions)}
    empty = 0
    while sum(map(len, got.values())) < expected and empty < 20:
        msgs = c.consume(1000, 0.5)
        empty = 0 if msgs else empty + 1
        for m in msgs:
            assert m.error() is None, m.error()
            h = [(k, v) for k, v in m.headers() or []] or None
            got[m.partition()].append((m.key(), m.value(), h, m.timestamp()[1]))
    c.close()
    return got


def test_a_new_broker_gets_every_record_back_in_order(lake_root, tmp_path):
    records = _records()
    with EmbeddedBroker() as first:
        first_topic = "orders"
        admin = AdminClient({"bootstrap.servers": first.bootstrap_servers})
        admin.create_topics([NewTopic(first_topic, PARTITIONS, 1)])[first_topic].result(10)
        produce(first.bootstrap_servers, first_topic, records)
        Ingester(
            IngestOptions(
                bootstrap_servers=first.bootstrap_servers,
                topics=(first_topic,),
                lake=Lake(lake_root),
            )
        ).run(until_caught_up=True)
    assert bronze(lake_root, first_topic).num_rows == len(records)

    # The broker is gone with every topic; a new, empty one takes its place.
    with EmbeddedBroker() as second:
        env = ingest_env(second, lake_root)
        out = subprocess.run(
            [*CLI, "replay", "kafka", "--topic", first_topic],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        assert f"re-published {len(records):,} records of bronze/orders to orders" in out.stdout
        got = _read_all(second.bootstrap_servers, first_topic, PARTITIONS, len(records))
        for p in range(PARTITIONS):
            want = [
                (r.key, r.value, r.headers, r.timestamp_ms) for r in records if r.partition == p
            ]
            assert got[p] == want, f"partition {p}"

        # Running the same replay again sends nothing: exactly once.
        again = subprocess.run(
            [*CLI, "replay", "kafka", "--topic", first_topic],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert again.returncode == 0, again.stderr
        assert "re-published 0 records" in again.stdout
        got = _read_all(second.bootstrap_servers, first_topic, PARTITIONS, len(records) + 1)
        assert sum(map(len, got.values())) == len(records)


def test_an_offset_range_to_another_topic_and_resume_after_a_partial_run(broker, lake_root):
    topic = "src-" + lake_root[-12:].replace("/", "")
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(10)
    records = _records()
    produce(broker.bootstrap_servers, topic, records)
    Ingester(
        IngestOptions(
            bootstrap_servers=broker.bootstrap_servers, topics=(topic,), lake=Lake(lake_root)
        )
    ).run(until_caught_up=True)

    target = topic + "-copy"
    calls = []

    def stop_after_two(done: int, total: int) -> None:
        calls.append((done, total))
        if len(calls) == 2:
            raise KeyboardInterrupt  # a replay interrupted between transactions

    kw = dict(to_topic=target, from_offset=100, to_offset=299, chunk=64)
    with pytest.raises(KeyboardInterrupt):
        republish(Lake(lake_root), topic, broker.bootstrap_servers, progress=stop_after_two, **kw)
    assert calls == [(64, 600), (128, 600)]
    summary = republish(Lake(lake_root), topic, broker.bootstrap_servers, **kw)
    assert summary.resumed_from == {0: 228}
    assert summary.records == 600 - 128
    got = _read_all(broker.bootstrap_servers, target, PARTITIONS, 600)
    for p in range(PARTITIONS):
        want = [r.value for r in records if r.partition == p][100:300]
        assert [v for _, v, _, _ in got[p]] == want, f"partition {p}"


def test_a_target_with_fewer_partitions_is_refused(broker, lake_root, make_topic):
    topic = make_topic(2)
    produce(broker.bootstrap_servers, topic, [Record(None, b"x", None, p) for p in (0, 1)])
    Ingester(
        IngestOptions(
            bootstrap_servers=broker.bootstrap_servers, topics=(topic,), lake=Lake(lake_root)
        )
    ).run(until_caught_up=True)
    small = make_topic(1)
    with pytest.raises(ReplayError, match=r"has 1 partitions but .* had 2"):
        republish(Lake(lake_root), topic, broker.bootstrap_servers, to_topic=small)
