"""Scale-out: two scorers in one consumer group and the HTTP server share the online
feature state through a real Redis, so they answer alike for the same entity, with the
events the scorers saw on Kafka before the lake has them."""

from __future__ import annotations

import threading
import uuid

import polars as pl
from fastapi.testclient import TestClient

from ingest import produce
from ingest.schema_registry_api import SchemaRegistryServer
from lake import SchemaStore
from orchestration.serving import run_scoring
from orchestration.serving.http import create_app
from orchestration.serving.online_store import load_online
from tests.conftest import ingest_until_caught_up
from tests.orders_data import orders, trained_lake
from training import ScoringEngine

PROBE = {"order_id": 10_000, "user_id": 3, "distance_km": 2.5}


def _answer(client: TestClient, name: str) -> tuple[int, float]:
    r = client.post(f"/models/{name}/predict", json={"events": [PROBE]})
    assert r.status_code == 200, r.text
    p = r.json()["predictions"][0]
    return p["model_version"], p["prediction"]


def test_two_scorers_and_the_http_server_share_features(broker, redis_url, tmp_path):
    topic = f"orders-{uuid.uuid4().hex[:8]}"
    lake, spec, _ = trained_lake(broker, str(tmp_path / "lake"), topic)  # 400 in the lake
    with SchemaRegistryServer(SchemaStore.open(lake)) as server:
        produce(broker.bootstrap_servers, topic, orders(server.url, topic, range(400, 500)))

    # Two scorers in one group, each observing what its partitions bring into Redis.
    results: list = []
    kw = dict(bootstrap_servers=broker.bootstrap_servers, lake=lake, specs=[spec], topic=topic,
              stop=threading.Event(), from_beginning=True, until_caught_up=True,
              online_store_url=redis_url, group_id=f"g-{uuid.uuid4().hex[:6]}")  # fmt: skip
    threads = [threading.Thread(target=lambda: results.append(run_scoring(**kw))) for _ in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(results) == 2
    preds = lake.scan(f"predictions.{spec.name}").collect()
    assert preds.height == 500  # every offset once, whichever scorer had it
    assert preds.select(pl.struct("input_partition", "input_offset").n_unique()).item() == 500

    # The HTTP server reads the same state: user 3's orders among all 500 (71),
    # while the lake's silver still holds 400 (57).
    shared = load_online(lake, spec.feature_set, redis_url)
    probe_engine = ScoringEngine(lake, spec, front_door="kafka", online=shared)
    app = create_app(lake, [spec], online_store_url=redis_url, catch_up_s=3600)
    with TestClient(app) as client:
        version, served = _answer(client, spec.name)
    expected_count = sum(1 for i in range(500) if i % 7 == 3)
    assert expected_count == 71
    frame = _probe_frame(lake, spec)
    features = shared.features(frame).row(0, named=True)
    assert features["user_orders"] == expected_count
    assert load_online(lake, spec.feature_set).features(frame)["user_orders"].item() == 57
    scored = probe_engine.score(frame, observe=False)
    assert (version, served) == (1, scored["prediction"].item())

    # Once the lake has the 100 events, an in-memory server (no Redis) agrees.
    ingest_until_caught_up(broker, topic, lake.root)
    with TestClient(create_app(lake, [spec])) as client:
        assert _answer(client, spec.name) == (version, served)


def _probe_frame(lake, spec) -> pl.DataFrame:
    import datetime as dt

    now = dt.datetime.now(dt.UTC)
    return pl.DataFrame([{**PROBE, "_kafka_timestamp": now}]).with_columns(
        pl.lit(None, pl.String).alias("_kafka_topic"),
        pl.lit(None, pl.Int32).alias("_kafka_partition"),
        pl.lit(None, pl.Int64).alias("_kafka_offset"),
        pl.lit(now.date()).alias("_date"),
    )
