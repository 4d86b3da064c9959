"""Bad situations stop with a clear error and lose nothing."""

from __future__ import annotations

import subprocess
import threading
import time

import pytest

from ingest import (
    BrokerUnavailable,
    EmbeddedBroker,
    Ingester,
    IngestOptions,
    OffsetOutOfRange,
    TopicNotFound,
    free_port,
)
from ingest.kafka import ensure_topic, wait_for_broker
from lake import BronzeTable, Lake, LakeNotWritable, SourceChanged, bronze_rows
from tests.conftest import CLI, bronze, ingest_env
from tests.kafka_data import assert_exactly_once, produce_known


def _opts(bootstrap: str, topic: str, lake_root: str, **kw) -> IngestOptions:
    return IngestOptions(bootstrap_servers=bootstrap, topics=(topic,), lake=Lake(lake_root), **kw)


def test_missing_topic_is_a_clear_error(broker, lake_root):
    with pytest.raises(TopicNotFound, match=r"'nope-404' does not exist.*EVENTLAKE_CREATE_TOPICS"):
        Ingester(_opts(broker.bootstrap_servers, "nope-404", lake_root)).run(until_caught_up=True)


def test_missing_topic_is_created_when_configured(broker, lake_root):
    topic = f"created-{time.monotonic_ns()}"
    opts = _opts(broker.bootstrap_servers, topic, lake_root, create_topic=True, topic_partitions=3)
    assert Ingester(opts).run(until_caught_up=True).records == 0
    admin = wait_for_broker(broker.bootstrap_servers)
    assert ensure_topic(admin, topic, bootstrap_servers="", create=False) == 3


def test_unreachable_broker_is_retried_with_backoff_then_reported(lake_root, caplog):
    port = free_port()  # nothing listens there
    t0 = time.monotonic()
    with pytest.raises(BrokerUnavailable, match=f"127.0.0.1:{port} for 4 s"):
        Ingester(_opts(f"127.0.0.1:{port}", "t", lake_root, broker_wait_s=4.0)).run()
    assert 3.9 < time.monotonic() - t0 < 10
    retries = [r.message for r in caplog.records if "not reachable" in r.message]
    assert len(retries) >= 2 and "retrying in 0.25 s" in retries[0]
    assert "retrying in 0.50 s" in retries[1]


def test_broker_that_comes_up_late_is_waited_for(lake_root, make_topic, broker):
    port = free_port()
    late = EmbeddedBroker(port=port)
    opts = _opts(f"127.0.0.1:{port}", "late", lake_root, broker_wait_s=30.0, create_topic=True)
    import threading

    result: list[object] = []
    t = threading.Thread(target=lambda: result.append(Ingester(opts).run(until_caught_up=True)))
    t.start()
    time.sleep(1.5)
    late.start()
    try:
        t.join(60)
        assert not t.is_alive()
        assert result and result[0].records == 0  # type: ignore[attr-defined]
    finally:
        late.stop()


def test_unwritable_lake_is_a_clear_error(broker, make_topic, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(LakeNotWritable, match="a-file/lake' is not writable"):
        Ingester(_opts(broker.bootstrap_servers, make_topic(), str(blocker / "lake"))).run()


def test_recreated_topic_stops_instead_of_mixing_offsets(lake_root):
    """An embedded broker restart loses every topic; the lake must not take the new
    topic's offsets for a continuation of the old one's."""
    with EmbeddedBroker() as first:
        admin = wait_for_broker(first.bootstrap_servers)
        ensure_topic(admin, "orders", bootstrap_servers="", create=True, partitions=1)
        expected = produce_known(first.bootstrap_servers, "orders", 1, 500)
        Ingester(_opts(first.bootstrap_servers, "orders", lake_root)).run(until_caught_up=True)
        # The same incarnation is accepted again.
        assert (
            Ingester(_opts(first.bootstrap_servers, "orders", lake_root))
            .run(until_caught_up=True)
            .records
            == 0
        )
    with EmbeddedBroker() as second:  # same topic name, offsets start again at 0
        admin = wait_for_broker(second.bootstrap_servers)
        ensure_topic(admin, "orders", bootstrap_servers="", create=True, partitions=1)
        produce_known(second.bootstrap_servers, "orders", 1, 600, seed=9)
        with pytest.raises(SourceChanged, match=r"earlier incarnation of topic 'orders'"):
            Ingester(_opts(second.bootstrap_servers, "orders", lake_root)).run(until_caught_up=True)
    assert_exactly_once(bronze(lake_root, "orders"), expected)


def test_offsets_missing_from_kafka_stop_the_ingester(broker, make_topic, lake_root):
    """The lake expects offset 10,000 next but the log ends at 300 (truncated or
    rewritten): stop with a clear error rather than jump to the start or the end."""
    topic = make_topic(1)
    produce_known(broker.bootstrap_servers, topic, 1, 300)
    opts = _opts(broker.bootstrap_servers, topic, lake_root)
    Ingester(opts).run(until_caught_up=True)
    table = BronzeTable.open(Lake(lake_root), topic)
    far = bronze_rows(topic, [0], [9_999], [(1, 0)], [None], [b"from a longer log"], [None])
    assert table.append(far).ranges == {0: (9_999, 9_999)}
    produce_known(broker.bootstrap_servers, topic, 1, 10, start=300)
    with pytest.raises(
        OffsetOutOfRange, match=r"holds offsets up to 9999, the Kafka log spans 0..309"
    ):
        Ingester(opts).run(until_caught_up=True)
    # A long-running ingester hears it from Kafka: no auto.offset.reset jump.
    stop = threading.Event()
    threading.Timer(20, stop.set).start()
    with pytest.raises(OffsetOutOfRange, match=rf"{topic}\[0\]: the offset the lake expects"):
        Ingester(opts).run(stop=stop)
    stop.set()
    assert bronze(lake_root, topic).num_rows == 301


def test_cli_reports_errors_in_one_line_with_exit_codes(broker, lake_root):
    env = ingest_env(broker, lake_root)
    missing = subprocess.run(
        [*CLI, "ingest", "--topic", "nope-404", "--until-caught-up"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 1
    assert "eventlake: error: topic 'nope-404' does not exist" in missing.stderr
    bad = subprocess.run(
        [*CLI, "ingest", "--topic", "x"],
        capture_output=True,
        text=True,
        env={**env, "EVENTLAKE_BATCH_MAX_RECORDS": "lots"},
        timeout=60,
    )
    assert bad.returncode == 2
    assert "setting EVENTLAKE_BATCH_MAX_RECORDS: Input should be a valid integer" in bad.stderr
    evil = subprocess.run(
        [*CLI, "ingest", "--topic", "../../etc", "--until-caught-up"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert evil.returncode == 1
    assert "'../../etc' cannot be used as a table name" in evil.stderr
