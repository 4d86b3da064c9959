"""The learner is exactly River, for every task and kind of label and metric.

Each stream (River's bundled datasets and synthetic generators) goes through the
whole pipeline: Avro through Kafka, bronze, silver, features, ``learn_online``. Its
progressive metric must equal ``river.evaluate.progressive_val_score`` on the same
stream to the last digit, and the learned state must equal River's. Labels keep the
type the schema gives them: string, int and boolean classes, float targets. Both
sides run in this process, so they share one ``PYTHONHASHSEED`` (River's multiclass
wrappers iterate over sets of labels).
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Callable
from typing import Any

import polars as pl
import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from river import datasets, evaluate, linear_model, metrics, multiclass, preprocessing, tree
from river.datasets import synth

from features import FeatureSet, Label, update_features
from ingest import Record, produce
from ingest.schema_registry_api import SchemaRegistryServer
from lake import Lake, SchemaStore
from tests.conftest import ingest_until_caught_up
from training.online import learn_online
from training.specs import ModelSpec

AVRO = {str: "string", int: "long", float: "double", bool: "boolean"}
N = 300


def normalized(stream: Any, n: int = N) -> list[tuple[dict[str, Any], Any]]:
    """The first ``n`` rows with Avro-safe feature names and one Python type per
    feature (a feature that is sometimes a float is always one), for both sides."""
    rows = list(itertools.islice(stream, n))
    names = {k: f"f_{k}".replace("-", "_") for k in rows[0][0]}
    floats = {k for x, _ in rows for k, v in x.items() if isinstance(v, float)}
    return [({names[k]: float(v) if k in floats else v for k, v in x.items()}, y) for x, y in rows]


def _send(broker, lake_root: str, topic: str, record: dict, events: list[dict]) -> None:
    """``events`` as Avro (schema ``record``) on a new one-partition ``topic``, 1 ms apart,
    ingested into bronze and silver."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=10)
    with SchemaRegistryServer(SchemaStore.open(Lake(lake_root))) as server:
        ser = AvroSerializer(SchemaRegistryClient({"url": server.url}), json.dumps(record))
        ctx = SerializationContext(topic, MessageField.VALUE)
        records = [
            Record(None, ser(e, ctx), None, 0, 1_700_000_000_000 + i) for i, e in enumerate(events)
        ]
    produce(broker.bootstrap_servers, topic, records)
    ingest_until_caught_up(broker, topic, lake_root)


def through_the_lake(
    broker, lake_root: str, rows: list[tuple[dict, Any]], *, label_event: bool = False
) -> FeatureSet:
    """``rows`` produced as Avro, ingested, and turned into features; the label in the
    same event, or with ``label_event`` in a later event on another topic."""
    topic = f"river-{uuid.uuid4().hex[:8]}"
    x0, y0 = rows[0]
    row_id = {"name": "row_id", "type": "long"}
    fields = [row_id] + [{"name": k, "type": AVRO[type(v)]} for k, v in x0.items()]
    y = [{"name": "y", "type": AVRO[type(y0)]}]
    label: Label | str = "y"
    if label_event:
        outcome = {"type": "record", "name": "Outcome", "fields": [row_id, *y]}
        outcomes = [{"row_id": i, "y": v} for i, (_, v) in enumerate(rows)]
        _send(broker, lake_root, f"{topic}-labels", outcome, outcomes)
        label, y = Label(f"silver.{topic}-labels-value", "row_id", "y"), []
    events = [
        {"row_id": i, **x} | ({} if label_event else {"y": v}) for i, (x, v) in enumerate(rows)
    ]
    _send(broker, lake_root, topic, {"type": "record", "name": "Row", "fields": fields + y}, events)
    fs = FeatureSet(
        name=topic.replace("-", "_"),
        source=f"silver.{topic}-value",
        key="row_id",
        event_time="_kafka_timestamp",
        features={k: pl.col(k) for k in x0},
        label=label,
    )
    assert update_features(Lake(lake_root), fs).new_rows == len(rows)
    return fs


def same_state(ours: Any, river: Any, rows: list[tuple[dict, Any]], task: str) -> None:
    """The learned state equals River's: weights of linear models (per class for
    one-vs-rest); the shape of trees and every answer they give."""
    last = list(ours.steps.values())[-1] if hasattr(ours, "steps") else ours
    ref = list(river.steps.values())[-1] if hasattr(river, "steps") else river
    if isinstance(last, multiclass.OneVsRestClassifier):
        assert list(last.classifiers) == list(ref.classifiers)
        for c in last.classifiers:
            assert dict(last.classifiers[c].weights) == dict(ref.classifiers[c].weights)
    elif hasattr(last, "weights"):
        assert dict(last.weights) == dict(ref.weights)
    else:
        assert last.summary == ref.summary
    answer = "predict_proba_one" if task == "classification" else "predict_one"
    for x, _ in rows:
        assert getattr(ours, answer)(x) == getattr(river, answer)(x)


def _scaled_lr() -> Any:
    return preprocessing.StandardScaler() | linear_model.LogisticRegression()


def _scaled_ovr() -> Any:
    return preprocessing.StandardScaler() | multiclass.OneVsRestClassifier(
        linear_model.LogisticRegression()
    )


def _ovr() -> Any:
    return multiclass.OneVsRestClassifier(linear_model.LogisticRegression())


def _tree() -> Any:  # answers nothing until it has seen a label
    return tree.HoeffdingTreeClassifier(grace_period=50)


def _linear_regression() -> Any:
    return preprocessing.StandardScaler() | linear_model.LinearRegression()


def _tree_regressor() -> Any:
    return tree.HoeffdingTreeRegressor(grace_period=50)


def _agrawal() -> Any:
    return synth.Agrawal(seed=42)


def _rbf() -> Any:
    return synth.RandomRBF(seed_model=7, seed_sample=7, n_classes=3, n_features=5)


Case = tuple[str, Callable[[], Any], Callable[[], Any]]
CASES: dict[str, tuple[Callable[[], Any], str, list[Case]]] = {
    # Multiclass, string labels; a label metric and a probability metric.
    "image_segments": (
        datasets.ImageSegments,
        "classification",
        [("ovr_lr", _scaled_ovr, metrics.MacroF1), ("tree", _tree, metrics.CrossEntropy)],
    ),
    # Binary, int labels (0/1).
    "agrawal": (
        _agrawal,
        "classification",
        [("lr", _scaled_lr, metrics.LogLoss), ("tree", _tree, metrics.ROCAUC)],
    ),
    # Multiclass, int labels.
    "random_rbf": (
        _rbf,
        "classification",
        [("tree", _tree, metrics.Accuracy), ("ovr_lr", _ovr, metrics.MicroF1)],
    ),
    # Binary, boolean labels.
    "phishing": (datasets.Phishing, "classification", [("tree", _tree, metrics.F1)]),
    # Regression, float targets.
    "trump_approval": (
        datasets.TrumpApproval,
        "regression",
        [("lr", _linear_regression, metrics.MAE), ("tree", _tree_regressor, metrics.RMSE)],
    ),
}


@pytest.mark.parametrize(
    "dataset, label_event",
    [(d, False) for d in CASES] + [("image_segments", True), ("agrawal", True)],
)
def test_pipeline_equals_river_progressive_val_score(broker, tmp_path, dataset, label_event):
    """Labels in the event itself, or (``label_event``) joined from a later event."""
    make_stream, task, cases = CASES[dataset]
    rows = normalized(make_stream())
    labels = {type(y) for _, y in rows}
    fs = through_the_lake(broker, str(tmp_path / "lake"), rows, label_event=label_event)
    lake = Lake(str(tmp_path / "lake"))
    stored = lake.scan(f"features.{fs.name}").select("label").collect()["label"].to_list()
    assert {type(v) for v in stored} == labels  # classes keep their schema type
    for name, make_model, make_metric in cases:
        spec = ModelSpec(
            name=f"{fs.name}_{name}",
            feature_set=fs,
            make_model=make_model,
            make_metric=make_metric,
            task=task,  # type: ignore[arg-type]
        )
        run = learn_online(lake, spec)
        river_model = make_model()
        expected = evaluate.progressive_val_score(iter(rows), river_model, make_metric())
        assert run.rows == len(rows)
        got = run.version.metrics[type(expected).__name__]
        assert got == expected.get(), (dataset, name, got, expected.get())
        same_state(run.version.model, river_model, rows, task)


def test_streams_cover_every_label_type():
    kinds = set()
    for make_stream, task, _ in CASES.values():
        _, y = next(iter(make_stream()))
        kinds.add((task, type(y).__name__))
    assert kinds == {
        ("classification", "str"),
        ("classification", "int"),
        ("classification", "bool"),
        ("regression", "float"),
    }


def test_a_multiclass_model_is_served_with_typed_classes(broker, tmp_path):
    """Served answers of a string-class model: the predicted class and every class's
    probability, typed as the labels are; live metrics over them equal River's, for a
    label metric and a probability metric."""
    import json as _json

    from training import ModelRegistry, ScoringEngine, live_metrics
    from training.release import promote

    rows = normalized(datasets.ImageSegments(), 200)
    lake = Lake(str(tmp_path / "lake"))
    fs = through_the_lake(broker, lake.root, rows)
    spec = ModelSpec(name="segments", feature_set=fs, make_model=_scaled_ovr,
                     make_metric=metrics.MacroF1, task="classification")  # fmt: skip
    model = learn_online(lake, spec).version.model
    promote(ModelRegistry(lake), spec.name, 1, by="test")
    engine = ScoringEngine(lake, spec)
    scored = engine.score(lake.scan(fs.source).sort("row_id").collect(), observe=False)
    engine.write(scored)
    classes = [_json.loads(c) for c in scored["predicted_class"]]
    assert classes == [model.predict_one(x) for x, _ in rows]
    assert {type(c) for c in classes} == {str}
    assert [dict(map(tuple, _json.loads(p))) for p in scored["probabilities"]] == [
        model.predict_proba_one(x) for x, _ in rows
    ]
    assert scored["prediction"].null_count() == len(rows)  # no positive class here
    for make_metric, answer in (
        (metrics.MacroF1, "predict_one"),
        (metrics.CrossEntropy, "predict_proba_one"),
    ):
        expected = make_metric()
        for x, y in rows:
            expected.update(y, getattr(model, answer)(x))
        same = ModelSpec(name="segments", feature_set=fs, make_model=_scaled_ovr,
                         make_metric=make_metric, task="classification")  # fmt: skip
        live = live_metrics(lake, same).row(0, named=True)
        assert live[type(expected).__name__] == expected.get()
        assert live["labeled"] == len(rows)
