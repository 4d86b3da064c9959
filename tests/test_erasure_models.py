"""Erasing a person reaches everything learned or derived from them: predictions (both
front doors), the online feature state (in memory and in Redis), and every model
version trained on their records, replaced and with its aliases moved; all of it in
the erasure audit."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import polars as pl

from lake import Lake
from orchestration.erasure import erase_everywhere
from orchestration.serving.online_store import load_online
from tests.orders_data import trained_lake
from training import ModelRegistry, ScoringEngine, append_predictions, prediction_frame

USER = 3  # orders i with i % 7 == 3


def _new_order(topic: str, order_id: int) -> dict:
    return {
        "order_id": order_id, "user_id": USER, "distance_km": 2.5, "minutes": 0.0,
        "_kafka_timestamp": dt.datetime(2030, 1, 1, tzinfo=dt.UTC), "_kafka_topic": topic,
        "_kafka_partition": 0, "_kafka_offset": 10_000, "_date": dt.date(2030, 1, 1),
    }  # fmt: skip


def test_erasure_reaches_predictions_online_state_and_models(broker, tmp_path, redis_url):
    topic = f"erase-{uuid.uuid4().hex[:8]}"
    lake, spec, _ = trained_lake(broker, str(tmp_path / "lake"), topic)
    registry = ModelRegistry(lake)
    assert registry.aliases(spec.name) == {"champion": 1}
    fs = spec.feature_set
    source = lake.scan(fs.source).collect()
    mine = source.filter(pl.col("user_id") == USER)
    assert mine.height == 57

    # Predictions through both front doors: Kafka (by offsets) and requests (by key).
    engine = ScoringEngine(lake, spec)
    streamed = source.head(100)
    engine.write(engine.score(streamed))
    n_theirs = streamed.filter(pl.col("user_id") == USER).height + 3
    asked = engine.score_rows([r for r in mine.tail(3).to_dicts()], request_id="req-1")
    append_predictions(lake, spec.name, prediction_frame(asked))
    before = lake.scan(f"predictions.{spec.name}").collect()
    theirs = before.filter(pl.col("entity_key").is_in([str(k) for k in mine["order_id"]]))
    assert theirs.height == n_theirs and before.height == 103

    # Online state, in memory (a running scorer) and shared in Redis.
    memory = engine.online
    shared = load_online(lake, fs, redis_url)
    probe = [_new_order(topic, 99_999)]
    assert memory.feature_dicts(probe)[0]["user_orders"] == 57
    assert shared.feature_dicts(probe)[0]["user_orders"] == 57

    report = erase_everywhere(
        lake, [spec], where=f"user_id = {USER}", online_store_url=redis_url, by="dpo"
    )
    assert report.records == 57
    after = lake.scan(f"predictions.{spec.name}").collect()
    assert after.height == 103 - n_theirs
    assert after.filter(pl.col("entity_key").is_in(theirs["entity_key"].to_list())).is_empty()
    assert report.rows_by_table[f"predictions.{spec.name}"] == n_theirs

    # Redis was cleared and reseeded by the erasure; the in-memory state reloads when
    # its scorer next refreshes.
    assert load_online(lake, fs, redis_url).feature_dicts(probe)[0]["user_orders"] == 0
    engine.refresh(force=True)
    assert engine.online.feature_dicts(probe)[0]["user_orders"] == 0

    # Both versions learned from the user: replaced by one fresh online version, which
    # did not; the champion moved to it, with the erasure as the reason.
    assert report.models_to_retrain == [f"{spec.name}:1", f"{spec.name}:2"]
    assert report.models["replaced"] == {
        f"{spec.name}:1": f"{spec.name}:3",
        f"{spec.name}:2": f"{spec.name}:3",
    }
    assert report.models["aliases"] == [f"{spec.name} champion 1->3"]
    assert registry.aliases(spec.name) == {"champion": 3}
    v3 = registry.load(spec.name, version=3)
    assert v3.kind == "online" and v3.rows == 400 - 57 and v3.parent_version is None
    features = lake.scan(f"features.{fs.name}").collect()  # what v3 learned from
    assert features.height == 400 - 57
    assert features.join(mine, on=["_kafka_partition", "_kafka_offset"], how="semi").is_empty()
    moved = registry.alias_history(spec.name).row(-1, named=True)
    assert moved["by"] == "dpo" and report.erasure_id in moved["reason"]

    audit = lake.scan("erasures").collect().row(0, named=True)
    assert json.loads(audit["models"]) == {"policy": "retrain", **report.models}
    assert json.loads(audit["rows_by_table"])[f"predictions.{spec.name}"] == n_theirs


def test_models_list_only_names_them(broker, tmp_path):
    topic = f"erase-{uuid.uuid4().hex[:8]}"
    lake, spec, _ = trained_lake(broker, str(tmp_path / "lake"), topic)
    report = erase_everywhere(lake, [spec], where="user_id = 5", models="list")
    assert report.models == {"policy": "list"}
    assert report.models_to_retrain == [f"{spec.name}:1", f"{spec.name}:2"]
    assert ModelRegistry(lake).aliases(spec.name) == {"champion": 1}
    assert ModelRegistry(lake).versions(spec.name).height == 2
    assert isinstance(Lake(lake.root).scan("erasures").collect()["models"][0], str)
