"""The whole pipeline against River itself: Phishing through Kafka, silver, features, learner."""

from __future__ import annotations

import json

import polars as pl
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from river import datasets, evaluate, linear_model, metrics, preprocessing, tree

from features import FeatureSet, update_features
from ingest import Record, produce
from ingest.schema_registry_api import SchemaRegistryServer
from lake import Lake, SchemaStore
from tests.conftest import ingest_until_caught_up
from training.online import learn_online
from training.specs import ModelSpec


def _model():
    return preprocessing.StandardScaler() | linear_model.LogisticRegression()


def test_progressive_accuracy_equals_river_progressive_val_score(broker, make_topic, lake_root):
    rows = list(datasets.Phishing())
    names = list(rows[0][0])
    avro_type = {float: "double", int: "long"}
    schema = json.dumps(
        {
            "type": "record",
            "name": "Site",
            "fields": [{"name": "row_id", "type": "long"}]
            + [{"name": n, "type": avro_type[type(rows[0][0][n])]} for n in names]
            + [{"name": "is_phishing", "type": "boolean"}],
        }
    )
    topic = make_topic(1)
    with SchemaRegistryServer(SchemaStore.open(Lake(lake_root))) as server:
        ser = AvroSerializer(SchemaRegistryClient({"url": server.url}), schema)
        ctx = SerializationContext(topic, MessageField.VALUE)
        records = [
            Record(
                None, ser({"row_id": i, **x, "is_phishing": y}, ctx), None, 0, 1_700_000_000_000 + i
            )
            for i, (x, y) in enumerate(rows)
        ]
    produce(broker.bootstrap_servers, topic, records)
    ingest_until_caught_up(broker, topic, lake_root)
    fs = FeatureSet(
        name="phishing",
        source=f"silver.{topic}-value",
        key="row_id",
        event_time="_kafka_timestamp",
        features={n: pl.col(n) for n in names},
        label="is_phishing",
    )
    assert update_features(Lake(lake_root), fs).new_rows == len(rows)
    spec = ModelSpec(
        name="phishing",
        feature_set=fs,
        make_model=_model,
        make_metric=metrics.Accuracy,
        task="classification",
    )
    run = learn_online(Lake(lake_root), spec)
    reference_model = _model()
    reference = evaluate.progressive_val_score(
        datasets.Phishing(), reference_model, metrics.Accuracy()
    )
    assert run.rows == 1250
    assert run.version.metrics["Accuracy"] == reference.get()  # 0.8928 with River 0.26
    weights = run.version.model["LogisticRegression"].weights
    assert dict(weights) == dict(reference_model["LogisticRegression"].weights)

    # A model that cannot predict at first (an empty tree answers {} / None), with a
    # label metric and a probability metric: River skips those answers; so do we.
    for metric in (metrics.Accuracy, metrics.ROCAUC):
        tree_spec = ModelSpec(
            name=f"phishing_tree_{metric.__name__.lower()}",
            feature_set=fs,
            make_model=lambda: tree.HoeffdingTreeClassifier(grace_period=50),
            make_metric=metric,
            task="classification",
        )
        got = learn_online(Lake(lake_root), tree_spec)
        reference_tree = tree.HoeffdingTreeClassifier(grace_period=50)
        want = evaluate.progressive_val_score(datasets.Phishing(), reference_tree, metric())
        assert got.version.metrics[metric.__name__] == want.get()
        assert got.version.model.summary == reference_tree.summary  # the same tree
