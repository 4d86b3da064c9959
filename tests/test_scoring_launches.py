"""The Kafka front door with launches: a shadow scores beside the champion (recorded,
never published), several models share one consume loop, a pinned version has its own
fence and group, and every (model, target, role, input offset) is written once."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import time
import uuid

import polars as pl
from confluent_kafka import Consumer, TopicPartition

from lake import Lake
from orchestration.serving import ServingMetrics, run_scoring
from tests.orders_data import trained_lake
from training import (
    ModelRegistry,
    Target,
    decide,
    follow_online,
    judge_live,
    learn_online,
    retrain,
)
from training.release import launch, promote


def _published(bootstrap: str, topic: str) -> int:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"v-{uuid.uuid4().hex[:6]}"})
    c.assign([TopicPartition(topic, p, 0) for p in range(2)])
    n, quiet = 0, time.monotonic()
    while time.monotonic() - quiet < 2.0:
        got = [m for m in c.consume(500, 0.3) if m.error() is None]
        if got:
            n, quiet = n + len(got), time.monotonic()
    c.close()
    return n


def test_shadow_several_models_and_a_pinned_version(broker, tmp_path):
    topic = f"orders-{uuid.uuid4().hex[:8]}"
    lake, eta, _ = trained_lake(broker, str(tmp_path / "lake"), topic)
    other = dataclasses.replace(eta, name=f"{eta.name}_b")  # a second model, same events
    registry = ModelRegistry(lake)
    promote(registry, other.name, learn_online(lake, other).version.version, by="test")
    launch(registry, eta.name, "shadow", challenger=2, by="test", reason="dark launch")

    metrics = ServingMetrics()
    kw = dict(bootstrap_servers=broker.bootstrap_servers, lake=lake, topic=topic,
              stop=threading.Event(), from_beginning=True, until_caught_up=True)  # fmt: skip
    first = run_scoring(specs=[eta, other], metrics=metrics, **kw)
    assert first.events == 400
    assert first.roles == {"serving": 800, "shadow": 400}
    assert first.predictions == 800  # answered (published): serving only

    preds = lake.scan(f"predictions.{eta.name}").collect()
    assert preds.group_by("model_version", "role", "target").len().sort("role").rows() == [
        (1, "serving", "champion", 400),
        (2, "shadow", "champion", 400),
    ]
    assert lake.scan(f"predictions.{other.name}").collect().height == 400
    assert _published(broker.bootstrap_servers, f"{eta.name}-predictions") == 400
    sample = {"model": eta.name, "version": "2", "role": "shadow", "front_door": "kafka"}
    assert metrics.registry.get_sample_value("eventlake_serving_predictions_total", sample) == 400

    again = run_scoring(specs=[eta, other], **kw)
    assert (again.events, again.predictions) == (0, 0)  # the lake says all is scored

    pinned = run_scoring(specs=[eta], target=Target(version=2), **kw)
    assert pinned.roles == {"serving": 400}  # a pinned version serves alone
    preds = lake.scan(f"predictions.{eta.name}").collect()
    assert preds.height == 1200
    keys = ["model", "target", "role", "input_partition", "input_offset"]
    assert preds.select(pl.struct(keys).n_unique()).item() == 1200
    v2 = preds.filter(pl.col("target") == "v2")
    assert v2["model_version"].unique().to_list() == [2]
    # The shadow and the pinned scorer ran the same version on the same features.
    shadow = preds.filter(pl.col("role") == "shadow").sort("input_partition", "input_offset")
    assert (
        shadow["prediction"].to_list()
        == v2.sort("input_partition", "input_offset")["prediction"].to_list()
    )

    log = registry.access_log(eta.name).filter(pl.col("front_door") == "kafka")
    assert log.filter(pl.col("event") == "load").select("version", "role", "target").rows() == [
        (1, "serving", "champion"), (2, "shadow", "champion"),
        (1, "serving", "champion"), (2, "shadow", "champion"),
        (2, "serving", "v2"),
    ]  # fmt: skip
    assert log.filter(pl.col("event") == "unload").height == 5
    assert Lake(lake.root).exists(f"predictions.{other.name}")


def test_the_online_line_serves_batch_challenges_in_shadow_and_live_traffic_judges(
    broker, tmp_path
):
    topic = f"orders-{uuid.uuid4().hex[:8]}"
    lake, eta, _ = trained_lake(broker, str(tmp_path / "lake"), topic)  # v1 champion, v2
    registry = ModelRegistry(lake)
    # The online line follows: champion v1 is online, so the newest online version serves.
    assert follow_online(registry, eta.name, 2) == ["champion"]
    assert registry.alias(eta.name, "champion") == 2
    assert follow_online(registry, eta.name, 2) == []
    # A batch version challenges the online line in shadow, not on the holdout.
    batch = retrain(lake, eta, window_days=30, holdout_days=1e-6)
    [decision] = decide(lake, eta, holdout_days=1e-6)
    assert (decision.challenger, decision.champion, decision.promoted) == (batch.version, 2, False)
    assert registry.launch(eta.name).challenger == batch.version
    assert decide(lake, eta, holdout_days=1e-6) == []  # judged once; no labeled shadow yet
    # Make the batch version the champion (as a live win would), the online line its shadow.
    promote(registry, eta.name, batch.version, by="test")
    launch(registry, eta.name, "shadow", challenger=2, by="test", reason="the online line")
    run_scoring(bootstrap_servers=broker.bootstrap_servers, lake=lake, specs=[eta], topic=topic,
                stop=threading.Event(), from_beginning=True, until_caught_up=True)  # fmt: skip
    # Live traffic: the online line (which learned these orders) beats the batch version
    # on the same labeled events, so the online line takes over again: a rollback.
    judgment = judge_live(lake, eta, apply=False, min_labeled=400)
    assert judgment is not None and judgment.labeled == 400
    assert (judgment.champion, judgment.challenger, judgment.promoted) == (batch.version, 2, True)
    assert judgment.challenger_score < judgment.champion_score
    assert judgment.standard_errors > 2  # event by event, not by luck
    unsure = judge_live(lake, eta, apply=False, min_labeled=400, significance=1e6)
    assert unsure is not None and not unsure.promoted  # better, but not surely enough
    assert unsure.reason.endswith("standard errors (below the 1e+06 needed)")
    assert registry.alias(eta.name, "champion") == batch.version  # apply=False: nothing moved
    assert judge_live(lake, eta, min_labeled=401) is None  # too few labeled yet
    judge_live(lake, eta, min_labeled=400)
    assert registry.alias(eta.name, "champion") == 2
    assert registry.launch(eta.name).mode == "none"
    history = registry.alias_history(eta.name).filter(pl.col("alias") == "champion")
    assert history["reason"][-1].startswith("rollback to the online line: live MAE")
    assert registry.decisions(eta.name)["promoted"].to_list()[-1] is True


def test_a_drift_after_a_batch_champion_was_trained_hands_serving_back_to_the_online_line(
    broker, tmp_path
):
    topic = f"orders-{uuid.uuid4().hex[:8]}"
    lake, eta, _ = trained_lake(broker, str(tmp_path / "lake"), topic)  # online v1, v2
    registry = ModelRegistry(lake)
    follow_online(registry, eta.name, 2)
    batch = retrain(lake, eta, window_days=30, holdout_days=1e-6)
    decide(lake, eta, holdout_days=1e-6)  # launched as the online line's shadow
    promote(registry, eta.name, batch.version, by="test")  # as a live win would
    launch(registry, eta.name, "shadow", challenger=2, by="test", reason="the online line")
    trained_to = batch.event_time_to
    assert trained_to is not None

    def drift_at(when: dt.datetime) -> None:
        row = {"name": eta.name, "version": 2, "event_time": when, "detector": "ADWIN"}
        registry.record_drift([row | {"statistic": 9.0, "rows_seen": 400}])

    # A drift within the batch version's training window: it learned that world.
    drift_at(trained_to - dt.timedelta(hours=1))
    assert decide(lake, eta, holdout_days=1e-6) == []
    assert registry.alias(eta.name, "champion") == batch.version
    # A drift after it: the online line serves again at once, and the retrain the drift
    # asks for challenges the online line in shadow.
    drift_at(trained_to + dt.timedelta(minutes=5))
    again = retrain(lake, eta, window_days=30, holdout_days=1e-6)
    rollback, shadow = decide(lake, eta, holdout_days=1e-6)
    assert (rollback.challenger, rollback.champion, rollback.promoted) == (2, batch.version, True)
    assert rollback.reason.startswith("drift detected at ")
    assert (shadow.challenger, shadow.champion, shadow.promoted) == (again.version, 2, False)
    assert registry.alias(eta.name, "champion") == 2
    current = registry.launch(eta.name)
    assert (current.mode, current.challenger) == ("shadow", again.version)
    history = registry.alias_history(eta.name).filter(pl.col("alias") == "champion")
    assert history["reason"][-1].startswith("rollback to the online line: drift detected at")
    assert (
        registry.decisions(eta.name)["reason"]
        .to_list()[-2]
        .startswith("rollback to the online line: drift detected at")
    )
