"""Invariants 2 and 3 end to end: Confluent Avro through Kafka into silver and dead letters."""

from __future__ import annotations

import json
import subprocess

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from deltalake import DeltaTable

from ingest import Ingester, IngestOptions, Record, produce
from ingest.schema_registry_api import SchemaRegistryServer
from lake import Lake, SchemaStore
from lake.coverage import decode_coverage
from lake.dead_letters import DeadLetters
from lake.silver import SilverTable
from tests.conftest import CLI, ingest_env, ingest_until_caught_up


def schema(*fields: dict) -> str:
    return json.dumps(
        {"type": "record", "name": "OrderPlaced", "namespace": "shop", "fields": list(fields)}
    )


KIND_V1 = {"type": "enum", "name": "Kind", "symbols": ["PICKUP", "DELIVERY"], "default": "PICKUP"}
KIND_V2 = {**KIND_V1, "symbols": ["PICKUP", "DELIVERY", "DRONE"]}
V1 = schema(
    {"name": "order_id", "type": "int"},
    {"name": "kind", "type": KIND_V1},
    {"name": "coupon", "type": ["null", "string"], "default": None},
)
V2 = schema(
    {"name": "order_id", "type": "long"},
    {"name": "kind", "type": KIND_V2},
    {"name": "coupon", "type": ["null", "string"], "default": None},
    {"name": "tip", "type": "double", "default": 0.5},
)
V3 = schema(
    {"name": "order_id", "type": "long"},
    {"name": "kind", "type": KIND_V2},
    {"name": "tip", "type": "double", "default": 0.5},
)


def _serialize(client: SchemaRegistryClient, text: str, topic: str, records: list[dict]):
    ser = AvroSerializer(client, text)
    ctx = SerializationContext(topic, MessageField.VALUE)
    return [Record(None, ser(r, ctx), partition=0) for r in records]


def test_v1_v2_v3_history_lands_in_one_silver_table(broker, make_topic, lake_root):
    topic = make_topic(1)
    subject = f"{topic}-value"
    with SchemaRegistryServer(SchemaStore.open(Lake(lake_root))) as server:
        client = SchemaRegistryClient({"url": server.url})
        produce(
            broker.bootstrap_servers,
            topic,
            _serialize(
                client,
                V1,
                topic,
                [
                    {"order_id": 1, "kind": "DELIVERY", "coupon": "SAVE"},
                    {"order_id": 2, "kind": "PICKUP", "coupon": None},
                ],
            ),
        )
        ingest_until_caught_up(broker, topic, lake_root)
        first_files = set(DeltaTable(f"{lake_root}/silver/{subject}").file_uris())
        produce(
            broker.bootstrap_servers,
            topic,
            _serialize(
                client, V2, topic, [{"order_id": 2**40, "kind": "DRONE", "coupon": "X", "tip": 2.0}]
            ),
        )
        produce(
            broker.bootstrap_servers,
            topic,
            _serialize(client, V3, topic, [{"order_id": 4, "kind": "DRONE", "tip": 1.25}]),
        )
        ingest_until_caught_up(broker, topic, lake_root)
    silver = SilverTable(Lake(lake_root), subject).read()
    assert set(silver.column_names) == {
        "order_id",
        "kind",
        "coupon",
        "tip",
        "_kafka_topic",
        "_kafka_partition",
        "_kafka_offset",
        "_kafka_timestamp",
        "_schema_id",
        "_schema_version",
        "_date",
    }
    assert silver.schema.field("order_id").type == "int64"
    rows = silver.select(
        ["order_id", "kind", "coupon", "tip", "_schema_version", "_kafka_offset"]
    ).to_pylist()
    assert rows == [
        # v1 rows were decoded when only v1 existed; the tip column came later: null.
        {
            "order_id": 1,
            "kind": "DELIVERY",
            "coupon": "SAVE",
            "tip": None,
            "_schema_version": 1,
            "_kafka_offset": 0,
        },
        {
            "order_id": 2,
            "kind": "PICKUP",
            "coupon": None,
            "tip": None,
            "_schema_version": 1,
            "_kafka_offset": 1,
        },
        {
            "order_id": 2**40,
            "kind": "DRONE",
            "coupon": "X",
            "tip": 2.0,
            "_schema_version": 2,
            "_kafka_offset": 2,
        },
        # v3 removed coupon: the column stays, its rows hold null.
        {
            "order_id": 4,
            "kind": "DRONE",
            "coupon": None,
            "tip": 1.25,
            "_schema_version": 3,
            "_kafka_offset": 3,
        },
    ]
    # Old files were not rewritten: the table only gained files.
    assert first_files <= set(DeltaTable(f"{lake_root}/silver/{subject}").file_uris())
    assert all(c.ok for c in decode_coverage(Lake(lake_root), topic))


def test_a_new_field_gets_its_default_when_old_data_is_decoded_after_the_upgrade(
    broker, make_topic, lake_root
):
    topic = make_topic(1)
    with SchemaRegistryServer(SchemaStore.open(Lake(lake_root))) as server:
        client = SchemaRegistryClient({"url": server.url})
        produce(
            broker.bootstrap_servers,
            topic,
            _serialize(client, V1, topic, [{"order_id": 7, "kind": "PICKUP", "coupon": None}]),
        )
        client.register_schema(f"{topic}-value", Schema(V2, "AVRO"))
        ingest_until_caught_up(broker, topic, lake_root)
    row = SilverTable(Lake(lake_root), f"{topic}-value").read().to_pylist()[0]
    assert (row["order_id"], row["tip"], row["_schema_version"]) == (7, 0.5, 1)


def test_every_kind_of_bad_record_goes_to_dead_letters_and_reprocess_moves_them(
    broker, make_topic, lake_root, tmp_path
):
    topic = make_topic(1)
    registry = SchemaStore.open(Lake(lake_root))
    good_id = registry.register(f"{topic}-value", V1).id
    client = SchemaRegistryClient({"url": "http://unused"})
    with SchemaRegistryServer(registry) as server:
        client = SchemaRegistryClient({"url": server.url})
        good = _serialize(client, V1, topic, [{"order_id": 1, "kind": "PICKUP", "coupon": None}])[
            0
        ].value
    # A schema nobody registered yet: id 2 in the lake once registered below.
    other = SchemaStore.open(Lake(str(tmp_path / "elsewhere")))
    other.register("x-value", V1)
    other_id = other.register("x-value", V2).id
    assert other_id == 2
    body = good[5:]
    tip_body = body + b"\x00\x00\x00\x00\x00\x00\xe0\x3f"  # + tip 0.5 (V2 layout)
    bad = [
        Record(None, good, partition=0),  # 0 ok
        Record(b"k", None, partition=0),  # 1 tombstone
        Record(None, b"\x01" + good[1:], partition=0),  # 2 wrong magic
        Record(None, b"\x00\x00", partition=0),  # 3 too short
        Record(None, b"\x00" + (2).to_bytes(4, "big") + tip_body, partition=0),  # 4 unknown id
        Record(None, good[:6], partition=0),  # 5 truncated
        Record(None, good[:5] + b"\x02\xfe\xff\xff\xff\x0f", partition=0),  # 6 corrupt
        Record(None, good, partition=0),  # 7 ok
    ]
    produce(broker.bootstrap_servers, topic, bad)
    ingest_until_caught_up(broker, topic, lake_root)
    dead = DeadLetters.open(Lake(lake_root)).read(topic)
    assert list(
        zip(dead.column("offset").to_pylist(), dead.column("error_kind").to_pylist(), strict=True)
    ) == [
        (1, "tombstone"),
        (2, "not_confluent_framed"),
        (3, "not_confluent_framed"),
        (4, "unknown_schema_id"),
        (5, "decode_error"),
        (6, "decode_error"),
    ]
    assert dead.column("value").to_pylist()[1] == b"\x01" + good[1:]  # bytes kept whole
    assert (
        "register it, then run `eventlake dead-letters reprocess`"
        in dead.column("error_message").to_pylist()[3]
    )
    silver = SilverTable(Lake(lake_root), f"{topic}-value")
    assert silver.read().column("_kafka_offset").to_pylist() == [0, 7]
    assert all(c.ok for c in decode_coverage(Lake(lake_root), topic))
    assert good_id == 1

    # The cause is fixed: schema id 2 registered. Reprocess twice: moved exactly once.
    assert registry.register(f"{topic}-value", V2).id == 2
    env = ingest_env(broker, lake_root)
    for expected in ("moved 1 dead letters", "moved 0 dead letters"):
        out = subprocess.run(
            [*CLI, "dead-letters", "reprocess", "--topic", topic],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        assert expected in out.stdout
    assert silver.read().column("_kafka_offset").to_pylist() == [0, 4, 7]
    assert silver.read().column("tip").to_pylist() == [None, 0.5, None]
    left = DeadLetters.open(Lake(lake_root)).read(topic).column("offset").to_pylist()
    assert left == [1, 2, 3, 5, 6]
    assert all(c.ok for c in decode_coverage(Lake(lake_root), topic))
    listing = subprocess.run(
        [*CLI, "dead-letters", "list", "--topic", topic],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "5 dead letters of" in listing.stdout
    assert "2 decode_error, 2 not_confluent_framed, 1 tombstone" in listing.stdout


def test_a_crash_between_bronze_and_silver_is_repaired_at_restart(broker, make_topic, lake_root):
    topic = make_topic(2)
    registry = SchemaStore.open(Lake(lake_root))
    with SchemaRegistryServer(registry) as server:
        client = SchemaRegistryClient({"url": server.url})
        records = _serialize(
            client,
            V1,
            topic,
            [{"order_id": i, "kind": "PICKUP", "coupon": None} for i in range(40)],
        )
    produce(
        broker.bootstrap_servers,
        topic,
        [r._replace(partition=i % 2) for i, r in enumerate(records)],
    )
    # Bronze committed, silver not: what a crash between the two commits leaves.
    Ingester(
        IngestOptions(
            bootstrap_servers=broker.bootstrap_servers, topics=(topic,), lake=Lake(lake_root)
        )
    ).run(until_caught_up=True)
    assert decode_coverage(Lake(lake_root), topic)[0].missing == list(range(20))
    ingest_until_caught_up(broker, topic, lake_root)  # nothing new in Kafka; the restart repairs
    cov = decode_coverage(Lake(lake_root), topic)
    assert [(c.partition, c.bronze, c.silver, c.ok) for c in cov] == [
        (0, 20, 20, True),
        (1, 20, 20, True),
    ]
    ingest_until_caught_up(broker, topic, lake_root)  # and a second restart adds nothing
    assert sum(c.silver for c in decode_coverage(Lake(lake_root), topic)) == 40


@pytest.mark.parametrize("name", ["../x", "a/b", "..", "x" * 250, "/etc"])
def test_names_never_become_paths_outside_the_lake(lake_root, name):
    import os

    from lake import InvalidTableName
    from lake.names import bronze, from_segment

    uri = SilverTable(Lake(lake_root), name).uri  # any subject: encoded inside silver/
    assert os.path.dirname(os.path.realpath(uri)) == os.path.realpath(f"{lake_root}/silver")
    seg = os.path.basename(uri)
    assert from_segment(seg) == name or (seg.startswith("~~") and len(name) > 150)  # hashed
    with pytest.raises(InvalidTableName):  # topics keep Kafka's names
        Lake(lake_root).uri(bronze(name))


def test_sigkill_with_decoding_keeps_silver_and_dead_letters_exact(
    broker, make_topic, lake_root, processes
):
    import random
    import signal
    import time

    from tests.conftest import bronze_version

    topic = make_topic(2)
    registry = SchemaStore.open(Lake(lake_root))
    with SchemaRegistryServer(registry) as server:
        client = SchemaRegistryClient({"url": server.url})
        good = _serialize(
            client,
            V1,
            topic,
            [{"order_id": i, "kind": "PICKUP", "coupon": None} for i in range(6000)],
        )
    records = [r._replace(partition=i % 2) for i, r in enumerate(good)]
    for i in range(0, len(records), 97):  # a dead letter now and then
        records[i] = records[i]._replace(value=b"not avro")
    produce(broker.bootstrap_servers, topic, records)
    env = ingest_env(broker, lake_root, batch_max_records=200, decode_avro="true")
    rng = random.Random()
    for attempt in range(3):
        before = bronze_version(lake_root, topic)
        proc = processes.start(
            ["ingest", "--topic", topic, "--until-caught-up"], env, f"run{attempt}"
        )
        deadline = time.monotonic() + 30
        while bronze_version(lake_root, topic) <= before and proc.poll() is None:
            assert time.monotonic() < deadline, processes.log(f"run{attempt}")
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.3))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
    final = processes.start(["ingest", "--topic", topic, "--until-caught-up"], env, "final")
    assert final.wait(120) == 0, processes.log("final")
    cov = decode_coverage(Lake(lake_root), topic)
    assert [(c.bronze, c.ok) for c in cov] == [(3000, True), (3000, True)]
    assert sum(c.dead_letters for c in cov) == len(range(0, 6000, 97))
    silver = SilverTable(Lake(lake_root), f"{topic}-value").read()
    assert sorted(silver.column("order_id").to_pylist()) == [i for i in range(6000) if i % 97 != 0]


def test_record_name_strategy_names_silver_after_the_record(broker, make_topic, lake_root):
    from confluent_kafka.schema_registry import record_subject_name_strategy

    topic = make_topic(1)
    with SchemaRegistryServer(SchemaStore.open(Lake(lake_root))) as server:
        client = SchemaRegistryClient({"url": server.url})
        ser = AvroSerializer(
            client, V1, conf={"subject.name.strategy": record_subject_name_strategy}
        )
        ctx = SerializationContext(topic, MessageField.VALUE)
        produce(
            broker.bootstrap_servers,
            topic,
            [
                Record(None, ser({"order_id": i, "kind": "PICKUP", "coupon": None}, ctx))
                for i in range(3)
            ],
        )
    ingest_until_caught_up(broker, topic, lake_root, subject_strategy="record")
    rows = SilverTable(Lake(lake_root), "shop.OrderPlaced").read()
    assert rows.column("order_id").to_pylist() == [0, 1, 2]
    assert rows.column("_schema_version").to_pylist() == [1, 1, 1]
