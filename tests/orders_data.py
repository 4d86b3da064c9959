"""Orders on Kafka for the scoring and serving tests: Avro records, a feature set
(distance and the user's prior orders) and a linear model of the minutes."""

from __future__ import annotations

import json

import polars as pl
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from river import linear_model, metrics, preprocessing

from features import FeatureSet, prior_count, update_features
from ingest import EmbeddedBroker, Record, produce
from ingest.schema_registry_api import SchemaRegistryServer
from lake import Lake, SchemaStore
from tests.conftest import ingest_until_caught_up
from training import ModelRegistry, learn_online
from training.release import promote
from training.specs import ModelSpec

SCHEMA = json.dumps(
    {
        "type": "record",
        "name": "Order",
        "fields": [
            {"name": "order_id", "type": "long"},
            {"name": "user_id", "type": "long"},
            {"name": "distance_km", "type": "double"},
            {"name": "minutes", "type": "double"},
        ],
    }
)


def spec(topic: str) -> ModelSpec:
    fs = FeatureSet(
        name=f"fs_{topic}",
        source=f"silver.{topic}-value",
        key="order_id",
        event_time="_kafka_timestamp",
        features={"distance_km": pl.col("distance_km"), "user_orders": prior_count("user_id")},
        label="minutes",  # known at once here; a later event in the demo
    )
    return ModelSpec(
        name=f"m_{topic}",
        feature_set=fs,
        make_model=lambda: preprocessing.StandardScaler() | linear_model.LinearRegression(),
        make_metric=metrics.MAE,
    )


def orders(server_url: str, topic: str, ids: range) -> list[Record]:
    ser = AvroSerializer(SchemaRegistryClient({"url": server_url}), SCHEMA)
    ctx = SerializationContext(topic, MessageField.VALUE)
    return [
        Record(
            str(i).encode(),
            ser(
                {
                    "order_id": i,
                    "user_id": i % 7,
                    "distance_km": i % 9 + 0.5,
                    "minutes": 10 + 3 * (i % 9),
                },
                ctx,
            ),
            None,
            i % 2,
            1_700_000_000_000 + i,
        )
        for i in ids
    ]


def trained_lake(
    broker: EmbeddedBroker, root: str | Lake, topic: str, *, second: bool = True
) -> tuple[Lake, ModelSpec, str]:
    """400 orders on a new 2-partition ``topic``, in the lake at ``root``, with v1 (online,
    champion, learned from the first 300) and, with ``second``, v2 (online, all 400) of
    ``spec(topic)``; without it the last 100 orders are in the lake only."""
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(timeout=10)
    s, lake = spec(topic), root if isinstance(root, Lake) else Lake(root)
    with SchemaRegistryServer(SchemaStore.open(lake)) as server:
        produce(broker.bootstrap_servers, topic, orders(server.url, topic, range(0, 300)))
        ingest_until_caught_up(broker, topic, lake)
        update_features(lake, s.feature_set)
        v1 = learn_online(lake, s).version
        assert v1 is not None
        promote(ModelRegistry(lake), s.name, v1.version, by="test")
        produce(broker.bootstrap_servers, topic, orders(server.url, topic, range(300, 400)))
        ingest_until_caught_up(broker, topic, lake)
        if second:
            update_features(lake, s.feature_set)
            v2 = learn_online(lake, s).version
            assert v2 is not None and v2.version == 2
    return lake, s, topic
