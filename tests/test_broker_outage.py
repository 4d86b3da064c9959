"""A broker that stops answering mid-run: the ingester waits, then goes on; nothing lost."""

from __future__ import annotations

import os
import signal
import time

from ingest import EmbeddedBroker
from ingest.kafka import ensure_topic, wait_for_broker
from tests.conftest import bronze, bronze_version, ingest_env
from tests.kafka_data import assert_exactly_once, produce_known


def _rows(lake_root: str) -> int:
    return bronze(lake_root, "orders").num_rows if bronze_version(lake_root, "orders") >= 0 else 0


def test_ingest_survives_a_frozen_broker(lake_root, processes):
    with EmbeddedBroker() as broker:
        admin = wait_for_broker(broker.bootstrap_servers)
        ensure_topic(admin, "orders", bootstrap_servers="", create=True, partitions=2)
        first = produce_known(broker.bootstrap_servers, "orders", 2, 3000, seed=11)
        proc = processes.start(
            ["ingest", "--topic", "orders"], ingest_env(broker, lake_root), "ingest"
        )
        deadline = time.monotonic() + 30
        while _rows(lake_root) < 6000:
            assert time.monotonic() < deadline and proc.poll() is None, processes.log("ingest")
            time.sleep(0.1)
        assert broker.pid is not None
        os.kill(broker.pid, signal.SIGSTOP)  # unreachable: connections hang, nothing answers
        try:
            time.sleep(8)  # longer than the consumer session timeout
            assert proc.poll() is None, processes.log("ingest")
        finally:
            os.kill(broker.pid, signal.SIGCONT)
        more = produce_known(broker.bootstrap_servers, "orders", 2, 2000, seed=12, start=3000)
        deadline = time.monotonic() + 60
        while _rows(lake_root) < 10_000:
            assert time.monotonic() < deadline and proc.poll() is None, processes.log("ingest")
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, processes.log("ingest")
    assert_exactly_once(bronze(lake_root, "orders"), {p: first[p] + more[p] for p in first})
