"""The embedded Tansu broker: starts on a free loopback port, answers, stops."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import time

import pytest
from confluent_kafka import Consumer, TopicPartition

from ingest import BrokerStartError, EmbeddedBroker, Record, free_port, produce
from ingest.kafka import ensure_topic, wait_for_broker
from tests.conftest import CLI


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_starts_serves_kafka_and_stops():
    with EmbeddedBroker() as b:
        host, port = b.bootstrap_servers.split(":")
        assert host == "127.0.0.1" and _listening(int(port))
        admin = wait_for_broker(b.bootstrap_servers)
        assert ensure_topic(admin, "hello", bootstrap_servers="", create=True, partitions=2) == 2
        produce(b.bootstrap_servers, "hello", [Record(b"k", b"v", [("h", b"1")], 1)])
        c = Consumer({"bootstrap.servers": b.bootstrap_servers, "group.id": "probe"})
        c.assign([TopicPartition("hello", 1, 0)])
        msg = None
        for _ in range(50):
            msg = c.poll(0.2)
            if msg is not None:
                break
        c.close()
        assert msg is not None and (msg.key(), msg.value(), msg.headers()) == (
            b"k",
            b"v",
            [("h", b"1")],
        )
        pid = b.pid
    assert not _listening(int(port))
    with pytest.raises(ProcessLookupError):
        import os

        os.kill(pid, 0)


def test_a_taken_port_is_a_clear_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(BrokerStartError, match="did not start"):
            EmbeddedBroker(port=port, start_timeout_s=3).start()


def test_broker_command_prints_the_address_and_stops_on_sigterm(tmp_path):
    port = free_port()
    proc = subprocess.Popen(
        [*CLI, "broker", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert re.fullmatch(
            rf"Kafka broker \(Tansu, memory storage\) listening at "
            rf"127.0.0.1:{port}\n",
            line,
        )
        assert _listening(port)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        deadline = time.monotonic() + 5
        while _listening(port) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _listening(port)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
