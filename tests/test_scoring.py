"""Scoring from Kafka with the champion, exactly once into the lake, switching champions live."""

from __future__ import annotations

import json
import threading
import time

import polars as pl
import pytest
from confluent_kafka import Consumer, TopicPartition

from features import update_features
from ingest import produce
from ingest.schema_registry_api import SchemaRegistryServer
from lake import Lake, SchemaStore
from orchestration.serving.kafka import run_scoring
from tests.conftest import ingest_until_caught_up
from tests.orders_data import orders as _orders
from tests.orders_data import spec as _spec
from training.errors import ModelNotFound
from training.evaluation import evaluate
from training.lineage import explain
from training.model_registry import ModelRegistry
from training.online import learn_online
from training.scoring import ScoringEngine, live_metrics


def test_score_with_the_champion_switch_live_and_explain(broker, make_topic, lake_root):
    topic = make_topic(2)
    spec = _spec(topic)
    registry = ModelRegistry(Lake(lake_root))
    with SchemaRegistryServer(SchemaStore.open(Lake(lake_root))) as server:
        produce(broker.bootstrap_servers, topic, _orders(server.url, topic, range(0, 400)))
        ingest_until_caught_up(broker, topic, lake_root)
        update_features(Lake(lake_root), spec.feature_set)
        v1 = learn_online(Lake(lake_root), spec).version
        assert evaluate(Lake(lake_root), spec, v1.version).promoted

        # Score everything there is: 400 events, once.
        kw = dict(
            bootstrap_servers=broker.bootstrap_servers,
            lake=Lake(lake_root),
            specs=[spec],
            topic=topic,
            from_beginning=True,
        )
        first = run_scoring(stop=threading.Event(), until_caught_up=True, **kw)
        assert (first.events, first.predictions, first.versions) == (400, 400, {1})
        again = run_scoring(stop=threading.Event(), until_caught_up=True, **kw)
        assert again.predictions == 0  # the lake says they are scored

        # A live scorer; a new champion is promoted while it runs.
        stop = threading.Event()
        result = {}
        worker = threading.Thread(target=lambda: result.update(s=run_scoring(stop=stop, **kw)))
        worker.start()
        produce(broker.bootstrap_servers, topic, _orders(server.url, topic, range(400, 500)))
        preds_uri = f"predictions.{spec.name}"
        deadline = time.monotonic() + 60
        while _count(lake_root, preds_uri) < 500:
            assert time.monotonic() < deadline, "the live scorer did not score 100 events"
            time.sleep(0.2)
        ingest_until_caught_up(broker, topic, lake_root)
        update_features(Lake(lake_root), spec.feature_set)
        v2 = learn_online(Lake(lake_root), spec).version
        registry.set_alias(spec.name, "champion", v2.version, reason="test")
        time.sleep(2.5)  # the scorer checks the alias every 2 s
        produce(broker.bootstrap_servers, topic, _orders(server.url, topic, range(500, 560)))
        while _count(lake_root, preds_uri) < 560:
            assert time.monotonic() < deadline, "the live scorer did not score 60 more events"
            time.sleep(0.2)
        stop.set()
        worker.join(30)
    assert result["s"].versions == {1, 2}
    preds = pl.read_delta(f"{lake_root}/predictions/{spec.name}")
    assert preds.height == 560
    assert preds.select(pl.struct("input_partition", "input_offset").n_unique()).item() == 560
    late = preds.filter(pl.col("entity_key").cast(pl.Int64) >= 500)
    assert late["model_version"].unique().to_list() == [2]

    # The same predictions reached Kafka.
    out = _read(broker.bootstrap_servers, f"{spec.name}-predictions", 560)
    assert sorted(int(json.loads(v)["input_offset"]) for v in out) == sorted(
        preds["input_offset"].to_list()
    )

    # Which model scored offset 0 of partition 1, and what trained it?
    e = explain(Lake(lake_root), spec.name, topic, 1, 0)
    assert e.version == 1 and e.prediction["input_offset"] == 0
    assert e.trained_on == {topic: {"0": [0, 199], "1": [0, 199]}}
    assert e.training_rows.collect().height == 400

    ingest_until_caught_up(broker, topic, lake_root)
    update_features(Lake(lake_root), spec.feature_set)  # the labels of events 500..559 land
    live = live_metrics(Lake(lake_root), spec)
    assert live["model_version"].to_list() == [1, 2]
    assert live["role"].to_list() == ["serving", "serving"]
    assert live["labeled"].to_list() == [500, 60]
    assert live["MAE"].min() >= 0


def _count(root: str, name: str) -> int:
    try:
        return pl.scan_delta(f"{root}/{name.replace('.', '/')}").select(pl.len()).collect().item()
    except Exception:
        return 0


def _read(bootstrap: str, topic: str, n: int) -> list[bytes]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "verify-preds"})
    c.assign([TopicPartition(topic, p, 0) for p in range(2)])
    got: list[bytes] = []
    deadline = time.monotonic() + 20
    while len(got) < n and time.monotonic() < deadline:
        got += [m.value() for m in c.consume(500, 0.5) if m.error() is None]
    c.close()
    return got


def test_scoring_without_any_model_version_says_so(lake_root):
    with pytest.raises(ModelNotFound, match="model 'm_x' not found"):
        ScoringEngine(Lake(lake_root), _spec("x"))
