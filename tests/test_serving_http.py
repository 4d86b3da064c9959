"""The HTTP front door: predictions by target, launches, events into the lake, audit,
metrics, and 4xx (never 5xx) for anything malformed."""

from __future__ import annotations

import datetime as dt
import time
import uuid

import polars as pl
import pytest
from fastapi.testclient import TestClient

from features import OnlineFeatures
from orchestration.serving.http import create_app
from tests.conftest import ingest_until_caught_up
from tests.orders_data import trained_lake
from training import ModelRegistry, explain
from training.release import launch


@pytest.fixture(scope="module")
def served(broker, tmp_path_factory):
    """A lake with orders on a 2-partition topic, v1 (champion) and v2 of a model."""
    root = str(tmp_path_factory.mktemp("serving") / "lake")
    return trained_lake(broker, root, f"orders-{uuid.uuid4().hex[:8]}")


def _client(broker, lake, s):
    app = create_app(lake, [s], bootstrap_servers=broker.bootstrap_servers, reload_s=0.0)
    return TestClient(app, raise_server_exceptions=False)


def _serving(client: TestClient, name: str, want: dict[str, int]) -> None:
    """Wait until the server's champion engine has swapped to ``want`` (no restart)."""
    deadline = time.monotonic() + 10
    while client.get(f"/models/{name}").json()["serving"].get("champion") != want:
        assert time.monotonic() < deadline, client.get(f"/models/{name}").json()["serving"]
        time.sleep(0.05)


EVENT = {"order_id": 9001, "user_id": 3, "distance_km": 4.5}


def test_predict_by_target_with_typed_errors(broker, served):
    lake, s, _ = served
    with _client(broker, lake, s) as c:
        assert c.get("/health").json() == {"status": "ok"}
        assert c.get("/ready").json()["ready"] is True
        r = c.post(f"/models/{s.name}/predict", json={"events": [EVENT, {**EVENT, "user_id": 5}]})
        assert r.status_code == 200, r.text
        body = r.json()
        assert [p["model_version"] for p in body["predictions"]] == [1, 1]
        assert [p["role"] for p in body["predictions"]] == ["serving", "serving"]
        assert [p["entity_key"] for p in body["predictions"]] == ["9001", "9001"]

        # The answer is the champion's predict_one on the online features of the event.
        v1 = ModelRegistry(lake).load(s.name, version=1).model
        now = dt.datetime.now(dt.UTC)  # after every event: the same counts as the server's
        frame = pl.DataFrame([{**EVENT, "_kafka_timestamp": now}])
        x = OnlineFeatures.load(lake, s.feature_set).features(
            frame.with_columns(
                pl.lit(None, pl.String).alias("_kafka_topic"),
                pl.lit(None, pl.Int32).alias("_kafka_partition"),
                pl.lit(None, pl.Int64).alias("_kafka_offset"),
                pl.lit(None, pl.Date).alias("_date"),
            )
        )
        features = {k: v for k, v in x.select(s.feature_names).row(0, named=True).items()}
        assert features["user_orders"] == 57  # user 3 placed 57 of the 400 orders (i % 7 == 3)
        assert body["predictions"][0]["prediction"] == pytest.approx(v1.predict_one(features))

        pinned = c.post(f"/models/{s.name}/predict", json={"events": [EVENT], "version": 2})
        assert pinned.json()["predictions"][0]["model_version"] == 2
        assert c.post(f"/models/{s.name}/predict", json={"events": [EVENT], "version": 99}
                      ).status_code == 404  # fmt: skip
        missing = c.post(f"/models/{s.name}/predict", json={"events": [EVENT], "alias": "nope"})
        assert missing.status_code == 404 and "alias 'nope'" in missing.json()["detail"]
        assert c.post("/models/nobody/predict", json={"events": [EVENT]}).status_code == 404

        for bad, field in [
            ({"events": [{"order_id": 1, "user_id": 3}]}, "distance_km"),
            ({"events": [{**EVENT, "distance_km": "far"}]}, "distance_km"),
            ({"events": [{**EVENT, "colour": "red"}]}, "colour"),
            ({"events": []}, "events"),
            ({"events": [EVENT], "version": 0}, "version"),
        ]:
            r = c.post(f"/models/{s.name}/predict", json=bad)
            assert r.status_code == 422, (bad, r.text)
            assert field in [str(p) for p in r.json()["detail"][0]["loc"]], r.text

        listed = c.get("/models").json()
        assert listed[0]["aliases"] == {"champion": 1}
        assert [v["version"] for v in listed[0]["versions"]] == [1, 2]
        assert c.get("/models/nobody").status_code == 404


def test_shadow_and_canary_launches_without_restart_and_the_audit(broker, served):
    lake, s, _ = served
    registry = ModelRegistry(lake)
    with _client(broker, lake, s) as c:
        predict = f"/models/{s.name}/predict"
        launch(registry, s.name, "shadow", challenger=2, by="ana", reason="dark launch")
        _serving(c, s.name, {"serving": 1, "shadow": 2})
        r = c.post(predict, json={"events": [EVENT], "request_id": "shadow-1"}).json()
        assert [(p["model_version"], p["role"]) for p in r["predictions"]] == [(1, "serving")]

        launch(registry, s.name, "canary", challenger=2, fraction=0.5, by="ana")
        _serving(c, s.name, {"serving": 1, "canary": 2})
        events = [{**EVENT, "order_id": i} for i in range(40)]
        first = c.post(predict, json={"events": events, "request_id": "canary-1"}).json()
        again = c.post(predict, json={"events": events}).json()
        split = {p["entity_key"]: (p["model_version"], p["role"]) for p in first["predictions"]}
        assert split == {
            p["entity_key"]: (p["model_version"], p["role"]) for p in again["predictions"]
        }  # fmt: skip  (stable per entity)
        assert set(split.values()) == {(1, "serving"), (2, "canary")}
        assert 10 <= sum(v == (2, "canary") for v in split.values()) <= 30

        metrics = c.get("/metrics").text
        assert 'role="shadow"' in metrics and 'role="canary"' in metrics
        assert c.post(predict, json={"events": [EVENT], "version": 77}).status_code == 404
        errors = 'eventlake_serving_errors_total{front_door="http",kind="not_found",model="'
        assert f'{errors}{s.name}"}} 1.0' in c.get("/metrics").text
        launch(registry, s.name, "none", by="ana")
    # Leaving the app flushed every request's predictions to the lake, shadows included.
    preds = lake.scan(f"predictions.{s.name}").collect()
    shadow = preds.filter(pl.col("request_id") == "shadow-1").sort("role")
    assert shadow.select("model_version", "role", "front_door").rows() == [
        (1, "serving", "http"),
        (2, "shadow", "http"),
    ]
    assert preds.filter(pl.col("request_id") == "canary-1").height == 40

    e = explain(lake, s.name, request_id="canary-1", entity_key="0")
    assert e.version == split["0"][0]
    assert e.trained_on[s.feature_set.source.split(".", 1)[1].removesuffix("-value")]

    log = registry.access_log(s.name).filter(pl.col("front_door") == "http")
    loads = log.filter(pl.col("event") == "load").select("version", "role").rows()
    assert (1, "serving") in loads and (2, "shadow") in loads and (2, "canary") in loads
    assert set(log["event"]) == {"load", "unload"}
    assert registry.launch_history(s.name)["by"].to_list()[-3:] == ["ana"] * 3


def test_posted_events_land_in_the_lake(broker, served):
    lake, s, topic = served
    with _client(broker, lake, s) as c:
        ok = c.post(
            f"/topics/{topic}/events",
            json={"events": [{**EVENT, "minutes": 12.0}] * 3, "key_field": "order_id"},
        )
        assert ok.status_code == 202, ok.text
        assert ok.json()["subject"] == f"{topic}-value" and len(ok.json()["offsets"]) == 3
        bad = c.post(f"/topics/{topic}/events",
                     json={"events": [{**EVENT, "minutes": "soon"}]})  # fmt: skip
        assert bad.status_code == 422
        assert bad.json()["detail"][0]["loc"] == ["body", "events", 0, "minutes"]
        nokey = c.post(f"/topics/{topic}/events", json={"events": [EVENT], "key_field": "colour"})
        assert nokey.status_code == 422 and nokey.json()["detail"][0]["loc"][-1] == "key_field"
        assert c.post("/topics/nowhere/events", json={"events": [EVENT]}).status_code == 404
    before = lake.scan(s.feature_set.source).select(pl.len()).collect().item()
    ingest_until_caught_up(broker, topic, lake.root)
    silver = lake.scan(s.feature_set.source).collect()
    assert silver.height == before + 3
    assert silver.filter(pl.col("order_id") == 9001)["minutes"].to_list() == [12.0] * 3
