"""Graceful shutdown flushes; restarts re-read nothing; an empty topic finishes at once."""

from __future__ import annotations

import signal
import time

from ingest import Ingester, IngestOptions
from lake import Lake
from tests.conftest import bronze, bronze_version, ingest_env
from tests.kafka_data import assert_exactly_once, produce_known


def test_sigterm_flushes_the_open_batch_and_a_restart_reads_nothing_again(
    broker, make_topic, lake_root, processes
):
    topic = make_topic(2)
    # A batch that would stay open for ten minutes: only the shutdown can commit it.
    env = ingest_env(broker, lake_root, batch_max_latency_ms=600_000)
    proc = processes.start(["ingest", "--topic", topic], env, "long")
    deadline = time.monotonic() + 30
    while "assigned partitions" not in processes.log("long"):
        assert time.monotonic() < deadline and proc.poll() is None, processes.log("long")
        time.sleep(0.05)
    expected = produce_known(broker.bootstrap_servers, topic, 2, 2500)
    time.sleep(2.0)  # consumed into the open batch, not committed
    assert bronze_version(lake_root, topic) == 0
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0, processes.log("long")
    assert "ingested 5000 records" in processes.log("long")
    assert_exactly_once(bronze(lake_root, topic), expected)
    version = bronze_version(lake_root, topic)

    again = Ingester(
        IngestOptions(
            bootstrap_servers=broker.bootstrap_servers, topics=(topic,), lake=Lake(lake_root)
        )
    ).run(until_caught_up=True)
    assert (again.records, again.commits) == (0, 0)
    assert bronze_version(lake_root, topic) == version


def test_restart_resumes_after_the_last_committed_offset(broker, make_topic, lake_root):
    topic = make_topic(2)
    opts = IngestOptions(
        bootstrap_servers=broker.bootstrap_servers, topics=(topic,), lake=Lake(lake_root)
    )
    first = produce_known(broker.bootstrap_servers, topic, 2, 300, seed=5)
    assert Ingester(opts).run(until_caught_up=True).topics[topic].next_offsets == {0: 300, 1: 300}
    more = produce_known(broker.bootstrap_servers, topic, 2, 200, seed=6, start=300)
    second = Ingester(opts).run(until_caught_up=True)
    assert second.records == 400
    assert second.topics[topic].next_offsets == {0: 500, 1: 500}
    assert_exactly_once(bronze(lake_root, topic), {p: first[p] + more[p] for p in first})


def test_empty_topic_finishes_at_once(broker, make_topic, lake_root, caplog):
    topic = make_topic(3)
    opts = IngestOptions(
        bootstrap_servers=broker.bootstrap_servers, topics=(topic,), lake=Lake(lake_root)
    )
    summary = Ingester(opts).run(until_caught_up=True)
    assert (summary.records, summary.commits) == (0, 0)
    # It did not wait for a consumer-group assignment (about 3 s on this broker).
    assert summary.elapsed_s < 2.5
    assert bronze(lake_root, topic).num_rows == 0
