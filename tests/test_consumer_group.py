"""Two ingesters in one consumer group split the partitions; a killed one is replaced."""

from __future__ import annotations

import re
import signal
import threading
import time

from confluent_kafka import Consumer, TopicPartition
from deltalake import DeltaTable

from ingest import Ingester, IngestOptions, produce
from ingest.kafka import consumer_config
from ingest.schema_registry_api import SchemaRegistryServer
from lake import BronzeTable, Lake, SchemaStore, bronze_rows
from tests.conftest import bronze, ingest_env
from tests.kafka_data import assert_exactly_once, produce_known
from tests.orders_data import orders


def _assigned(log: str) -> set[int]:
    parts: set[int] = set()
    for m in re.finditer(r"assigned partitions \[([0-9, ]+)\]", log):
        parts |= {int(x) for x in m.group(1).split(",")}
    return parts


def test_two_ingesters_split_partitions_and_survive_a_kill(
    broker, make_topic, lake_root, processes
):
    topic = make_topic(4)
    # Enough that A (500-record commits) is mid-way when it is killed, even on a busy machine.
    expected = produce_known(broker.bootstrap_servers, topic, 4, 50_000, seed=3)
    env = ingest_env(broker, lake_root, batch_max_records=500)
    args = ["ingest", "--topic", topic, "--until-caught-up", "--group", "g-split"]
    a = processes.start(args, env, "a")
    b = processes.start(args, env, "b")
    # Wait until both own partitions and A has committed some of its own, then kill A.
    deadline = time.monotonic() + 60
    while not (
        _assigned(processes.log("a"))
        and _assigned(processes.log("b"))
        and "records, partitions" in processes.log("a")
    ):
        assert time.monotonic() < deadline, processes.log("a") + processes.log("b")
        assert a.poll() is None and b.poll() is None, processes.log("a") + processes.log("b")
        time.sleep(0.01)
    split_a, split_b = _assigned(processes.log("a")), _assigned(processes.log("b"))
    a.send_signal(signal.SIGKILL)
    a.wait(10)
    assert split_a and split_b, "both ingesters owned partitions before the kill"
    committed = BronzeTable.open(Lake(lake_root), topic).committed(sorted(split_a))
    unfinished = {p for p, c in committed.items() if c is None or c < 49_999}
    assert unfinished, "A was killed with work left"
    assert b.wait(120) == 0, processes.log("b")
    # B took over what A left unfinished, resuming from the lake's offsets.
    assert unfinished <= _assigned(processes.log("b")), processes.log("b")
    assert_exactly_once(bronze(lake_root, topic), expected)
    # Both processes committed to the same table.
    history = DeltaTable(f"{lake_root}/bronze/{topic}").history()
    writers = {c["eventlake.pid"] for c in history if c.get("operation") == "WRITE"}
    assert writers == {str(a.pid), str(b.pid)}


def test_a_partition_taken_over_gets_the_silver_its_last_owner_left_undone(
    broker, make_topic, lake_root
):
    """An owner that dies between its bronze and silver commits leaves bronze ahead of
    silver; whoever is assigned the partition next, even a process already running,
    decodes those records before reading on (silver's offset fence only moves forward)."""
    bs, lake, topic, group = broker.bootstrap_servers, Lake(lake_root), make_topic(2), "g-take"
    with SchemaRegistryServer(SchemaStore.open(lake)) as registry:
        produce(bs, topic, orders(registry.url, topic, range(200)))  # 100 per partition
    reader = Consumer(consumer_config(bs, "reader"))  # what the last owner read
    reader.assign([TopicPartition(topic, p, 0) for p in (0, 1)])
    read = [m for m in reader.consume(200, 10) if m.error() is None]
    reader.close()
    # The last owner: a group member that holds both partitions, then keeps one.
    owner = Consumer(consumer_config(bs, group))
    owner.subscribe([topic])
    stop, result = threading.Event(), {}
    options = IngestOptions(
        bootstrap_servers=bs, topics=(topic,), lake=lake, decode_avro=True, group_id=group
    )
    ingester = threading.Thread(target=lambda: result.update(s=Ingester(options).run(stop=stop)))
    try:
        deadline = time.monotonic() + 60
        while len(owner.assignment()) != 2:
            owner.poll(0.1)
            assert time.monotonic() < deadline, "the owner never got both partitions"
        ingester.start()
        while len(owner.assignment()) != 1:  # the ingester joined and got one
            owner.poll(0.1)
            assert time.monotonic() < deadline, "the ingester never got a partition"
        (kept,) = owner.assignment()
        other = 1 - kept.partition
        while BronzeTable.open(lake, topic).committed([other])[other] != 99:
            owner.poll(0.1)  # the rebalance's second round needs the owner polling
            assert time.monotonic() < deadline, "the ingester never took its partition"
        # The owner's last bronze commit, whose silver commit never happened.
        msgs = [m for m in read if m.partition() == kept.partition][:60]
        BronzeTable.open(lake, topic).append(
            bronze_rows(
                topic,
                [m.partition() for m in msgs],
                [m.offset() for m in msgs],
                [m.timestamp() for m in msgs],
                [m.key() for m in msgs],
                [m.value() for m in msgs],
                [m.headers() for m in msgs],
            )
        )
        owner.close()  # the ingester, running already, is assigned the partition
        owner = None
        silver = f"silver.{topic}-value"
        while not lake.exists(silver) or lake.scan(silver).collect().height < 200:
            assert time.monotonic() < deadline, "silver never got every order"
            time.sleep(0.1)
    finally:
        stop.set()
        if ingester.is_alive():
            ingester.join(60)
        if owner is not None:
            owner.close()
    ids = lake.scan(silver).select("order_id").collect()["order_id"]
    assert sorted(ids.to_list()) == list(range(200))
    assert result["s"].records == 140  # the 60 came from bronze, not from Kafka
