"""Online learning, replay, batch retraining, evaluation and drift on real lake tables."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
import subprocess

import polars as pl
import pytest
from river import linear_model, metrics, preprocessing

from features import FeatureSet, Label, update_features
from lake import Lake
from tests.conftest import CLI, ingest_env
from tests.test_features import _silver
from training.errors import ModelNotFound
from training.evaluation import evaluate
from training.model_registry import ModelRegistry
from training.online import learn_online, replay_online
from training.retrain import retrain
from training.specs import ModelSpec

T0 = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
FS = FeatureSet(
    name="eta",
    source="silver.order_placed",
    key="order_id",
    event_time="placed_at",
    features={"distance_km": pl.col("distance_km"), "rush": pl.col("rush")},
    label=Label("silver.order_delivered", key="order_id", column="delivery_minutes"),
)
SPEC = ModelSpec(
    name="eta",
    feature_set=FS,
    make_model=lambda: preprocessing.StandardScaler() | linear_model.LinearRegression(),
    make_metric=metrics.MAE,
)
N = 1200  # orders, 10 an hour: five days


def _world(i: int, rng: random.Random) -> tuple[dict, dict]:
    at = T0 + dt.timedelta(minutes=6 * i)
    distance = rng.uniform(0.5, 8.0)
    rush = float(at.hour in (12, 13, 19, 20))
    drifted = i >= N * 3 // 4  # the last 30 hours: the city got slow
    minutes = (25 + 6 * distance + 10 * rush) if drifted else (10 + 3 * distance + 5 * rush)
    minutes += rng.gauss(0, 1)
    order = {"order_id": i, "distance_km": distance, "rush": rush, "placed_at": at}
    delivered = {
        "order_id": i,
        "delivery_minutes": minutes,
        "delivered_at": at + dt.timedelta(minutes=minutes),
    }
    return order, delivered


@pytest.fixture
def lake(lake_root):
    rng = random.Random(3)
    world = [_world(i, rng) for i in range(N)]
    _silver(lake_root, "order_placed", "orders", [o for o, _ in world[:700]], 0)
    _silver(lake_root, "order_delivered", "deliveries", [d for _, d in world[:600]], 0)
    update_features(Lake(lake_root), FS)
    return lake_root, world


def _weights(model) -> dict:
    return dict(model["LinearRegression"].weights)


def test_online_increments_replay_retrain_evaluate_drift(lake):
    root, world = lake
    registry = ModelRegistry(Lake(root))
    first = learn_online(Lake(root), SPEC)
    assert first.rows == 600 and first.version.version == 1
    assert first.version.cursor == {"deliveries": {"0": 599}}
    assert first.version.metrics["MAE"] < 3.0
    assert learn_online(Lake(root), SPEC).version is None  # nothing new

    _silver(root, "order_placed", "orders", [o for o, _ in world[700:]], 700)
    _silver(root, "order_delivered", "deliveries", [d for _, d in world[600:]], 600)
    update_features(Lake(root), FS)
    second = learn_online(Lake(root), SPEC)
    assert second.rows == N - 600 and second.version.version == 2
    assert second.version.parent_version == 1 and second.version.metrics["rows"] == N
    assert second.version.lineage_offsets == {
        "orders": {"0": [0, N - 1]},
        "deliveries": {"0": [0, N - 1]},
    }
    # The world changed for the last quarter: the detector saw it, after it happened.
    assert second.drifts, "no drift detected"
    assert all(d["event_time"] >= world[N * 3 // 4][0]["placed_at"] for d in second.drifts)
    assert registry.drift("eta")["version"].to_list() == [2] * len(second.drifts)
    assert registry.trace("eta").filter(kind="online").height > 100

    # Replaying the same increments from scratch gives the same parameters.
    replayed = replay_online(Lake(root), SPEC, name="eta_replay")
    assert replayed.version == 2
    assert _weights(replayed.model) == _weights(second.version.model)
    assert replayed.metrics == second.version.metrics

    # Batch: a fresh model on the two days before the last one, scored on the last day.
    batch = retrain(Lake(root), SPEC, window_days=2, holdout_days=1, passes=2)
    assert batch.version == 3 and batch.kind == "batch"
    assert batch.rows == 480  # 2 days x 24 hours x 10 orders
    assert batch.event_time_to < world[-1][0]["placed_at"] - dt.timedelta(hours=23)
    assert set(batch.metrics) == {"MAE", "holdout_MAE", "rows"}

    first_call = evaluate(Lake(root), SPEC, 3)
    assert first_call.promoted and first_call.reason == "no champion yet"
    assert registry.load("eta", alias="champion").version == 3
    # v1 never saw the new world: worse on the holdout, not promoted.
    decision = evaluate(Lake(root), SPEC, 1, margin=0.0)
    assert not decision.promoted and decision.champion == 3
    assert decision.challenger_score > decision.champion_score
    assert registry.aliases("eta") == {"champion": 3, "challenger": 1}
    assert registry.decisions("eta")["promoted"].to_list() == [True, False]


def test_unknown_models_and_aliases_say_what_exists(lake):
    root, _ = lake
    learn_online(Lake(root), SPEC)
    registry = ModelRegistry(Lake(root))
    with pytest.raises(ModelNotFound, match=r"alias 'champion' of model 'eta' not found"):
        registry.load("eta", alias="champion")
    with pytest.raises(ModelNotFound, match=r"known: eta"):
        registry.load("nope")
    with pytest.raises(ValueError, match="not in feature set"):
        dataclasses.replace(SPEC, features=("distance_km", "weather"))


def test_the_command_line_trains_evaluates_and_lists(lake, broker):
    root, _ = lake
    env = ingest_env(broker, root, definitions="tests.definitions_eta")

    def cli(*args: str) -> str:
        out = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return out.stdout

    assert "eta v1 (online): learned 600 rows" in cli("learn", "--model", "eta")
    assert "nothing learned" in cli("learn", "--model", "eta")
    assert "eta v2 (batch): 240 rows" in cli(
        "retrain", "--model", "eta", "--window-days", "1", "--holdout-days", "1"
    )
    assert "promoted to champion (no champion yet" in cli(
        "evaluate", "--model", "eta", "--version", "2"
    )
    listing = cli("models")
    assert "v1   online" in listing and "v2   batch" in listing and "champion" in listing
    compared = cli("models", "compare", "--name", "eta", "1", "2")
    assert "v1 (online): MAE" in compared and "v2 (batch): MAE" in compared
    out = subprocess.run(
        [*CLI, "learn", "--model", "nope"], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 1 and "model spec 'nope' not found (known: " in out.stderr
