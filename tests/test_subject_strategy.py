"""The record subject strategy end to end: one topic, two record types, two silver tables,
found by ingest, the Dagster definitions, a backfill, features, replay and scoring."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import uuid

import dagster as dg
import polars as pl
import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.schema_registry import SchemaRegistryClient, record_subject_name_strategy
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from features import update_features
from ingest import Record, SchemaRegistryServer, produce
from lake import Lake, SchemaStore, silver_topics
from lake.names import features, predictions, silver
from orchestration.defs import LakeResource, Topology, build_definitions
from orchestration.settings import Settings
from tests.conftest import CLI, ingest_env, ingest_until_caught_up
from tests.definitions_record import DELIVERED, PLACED, SHIP
from training import learn_online

DAY1, DAY2 = dt.date(2026, 11, 1), dt.date(2026, 11, 2)
PER_DAY = 30
MILLIS = {"type": "long", "logicalType": "timestamp-millis"}
PLACED_SCHEMA = {
    "type": "record",
    "name": "Placed",
    "namespace": "shop",
    "fields": [
        {"name": "order_id", "type": "long"},
        {"name": "distance", "type": "double"},
        {"name": "at", "type": MILLIS},
    ],
}
DELIVERED_SCHEMA = {
    "type": "record",
    "name": "Delivered",
    "namespace": "shop",
    "fields": [{"name": "order_id", "type": "long"}, {"name": "minutes", "type": "double"}],
}
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@pytest.fixture(scope="module")
def fed(broker, tmp_path_factory):
    """Orders and deliveries of two days on one topic, under the record strategy."""
    lake_root = str(tmp_path_factory.mktemp("record") / "lake")
    topic = f"shop-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(timeout=10)
    with SchemaRegistryServer(SchemaStore.open(Lake(lake_root))) as server:
        client = SchemaRegistryClient({"url": server.url})
        conf = {"subject.name.strategy": record_subject_name_strategy}
        placed = AvroSerializer(client, json.dumps(PLACED_SCHEMA), conf=conf)
        delivered = AvroSerializer(client, json.dumps(DELIVERED_SCHEMA), conf=conf)
        ctx = SerializationContext(topic, MessageField.VALUE)
        records = []
        for d, day in enumerate((DAY1, DAY2)):
            start = dt.datetime.combine(day, dt.time(8), tzinfo=dt.UTC)
            for i in range(PER_DAY):
                order = d * PER_DAY + i
                at = start + dt.timedelta(minutes=10 * i)
                ms = int(at.timestamp() * 1000)
                key = str(order).encode()
                value = placed({"order_id": order, "distance": 1.0 + i % 7, "at": at}, ctx)
                records.append(Record(key, value, timestamp_ms=ms))
                minutes = 10.0 + 3 * (i % 7)
                value = delivered({"order_id": order, "minutes": minutes}, ctx)
                records.append(Record(key, value, timestamp_ms=ms + 60_000))
        produce(broker.bootstrap_servers, topic, records)
    ingest_until_caught_up(broker, topic, lake_root, subject_strategy="record")
    return lake_root, topic


def _silver(lake_root: str, subject: str) -> pl.DataFrame:
    return Lake(lake_root).scan(silver(subject)).sort("_kafka_partition", "_kafka_offset").collect()


def test_both_record_types_land_in_their_own_silver_table(fed):
    lake_root, topic = fed
    lake = Lake(lake_root)
    assert _silver(lake_root, PLACED).height == _silver(lake_root, DELIVERED).height == 2 * PER_DAY
    assert silver_topics(lake, PLACED) == silver_topics(lake, DELIVERED) == [topic]
    assert SchemaStore.open(lake).subjects() == [DELIVERED, PLACED]


def test_dagster_backfills_each_subject_and_computes_features(fed):
    lake_root, topic = fed
    settings = Settings(
        lake_root=lake_root,
        subject_strategy="record",
        definitions="tests.definitions_record",
        partitions_start=str(DAY1),
    )
    defs = build_definitions(settings)
    graph = defs.resolve_asset_graph()
    for subject in (PLACED, DELIVERED):
        node = graph.get(Topology.silver(subject))
        assert node.parent_keys == {Topology.bronze(topic)}
    streamed = {s: _silver(lake_root, s) for s in (PLACED, DELIVERED)}
    lake = Lake(lake_root)
    for subject in (PLACED, DELIVERED):  # a decoder bug loses some rows of day 1
        lake.table(silver(subject)).delete("order_id % 4 = 0")
    assets = [*(defs.assets or []), *(defs.asset_checks or [])]
    resources = {"lake": LakeResource.from_settings(settings)}
    instance = dg.DagsterInstance.ephemeral()
    for subject in (PLACED, DELIVERED):  # a day of each, one run each
        result = dg.materialize(
            assets,
            selection=[Topology.silver(subject)],
            partition_key=str(DAY1),
            instance=instance,
            resources=resources,
            run_config=QUIET,
        )
        assert result.success
    for subject, rows in streamed.items():
        now = _silver(lake_root, subject)
        day1 = pl.col("_date") == DAY1
        assert now.filter(day1).equals(rows.filter(day1)), subject
        day2 = now.filter(~day1)  # the other day is not touched by a day-1 backfill
        assert day2.height == rows.filter(~day1 & (pl.col("order_id") % 4 != 0)).height
    result = dg.materialize(
        assets,
        selection=[Topology.features(SHIP.feature_set)],
        partition_key=str(DAY1),
        instance=instance,
        resources=resources,
        run_config=QUIET,
    )
    assert result.success
    rows = lake.scan(features(SHIP.feature_set.name)).collect()
    assert rows.height == PER_DAY and rows["label"].null_count() == 0


def test_replay_and_score_find_their_tables(fed, broker):
    lake_root, topic = fed
    env = ingest_env(
        broker, lake_root, subject_strategy="record", definitions="tests.definitions_record"
    )
    replay = subprocess.run(
        [*CLI, "replay", "silver", "--subject", DELIVERED, "--all"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert replay.returncode == 0, replay.stderr[-2000:]
    assert f"rebuilt {topic}" in replay.stdout
    lake = Lake(lake_root)
    update_features(lake, SHIP.feature_set)
    assert learn_online(lake, SHIP).version is not None
    score = subprocess.run(
        [*CLI, "score", "--model", SHIP.name, "--from-beginning", "--until-caught-up"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert score.returncode == 0, score.stderr[-3000:]
    assert f"scored {2 * PER_DAY} events of {topic}" in score.stdout
    assert lake.scan(predictions(SHIP.name)).collect().height == 2 * PER_DAY
