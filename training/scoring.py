"""The scoring engine: one implementation behind every front door (Kafka, HTTP).

A :class:`ScoringEngine` holds, for one model spec:

- the online features (:class:`features.OnlineFeatures`, the incremental path's
  state: same semantics as the rows training learns from);
- the version its :class:`Target` names (an alias, ``champion`` by default, or a
  pinned version), hot-swapped when the alias moves, and the challenger of the
  model's current :class:`~training.model_registry.Launch` (shadow or canary),
  both re-read from the registry every ``reload_s`` seconds: launching,
  promoting and rolling back need no restart;
- one prediction record per scored event and role (``PREDICTION_SCHEMA``):
  model, version, role (``serving``, ``shadow``, ``canary``), target, entity key,
  input lineage (Kafka coordinates, or the request id), event time, latency.

Kafka predictions are written to ``predictions/<model>`` fenced by input offset
(Delta ``txn`` per model, target, topic and partition), so a restarted scorer
never writes one twice; request predictions are appended as they come
(:func:`append_predictions`). Every load and unload of a version is written to
the model access log.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal

import polars as pl
import pyarrow as pa
from deltalake import write_deltalake

from features import OnlineFeatures
from lake import AppendResult, Lake, TableNotInLake
from lake.fenced import fenced_append
from lake.names import COORDINATES, DATE, UTC_MICROS, features
from lake.names import predictions as predictions_table
from lake.offsets import txn_versions
from training.errors import ModelNotFound
from training.model_registry import Launch, ModelRegistry, ModelVersion
from training.specs import ModelSpec

__all__ = [
    "PREDICTION_SCHEMA",
    "Role",
    "ScoringEngine",
    "Target",
    "append_predictions",
    "in_canary",
    "labeled_predictions",
    "live_metrics",
    "prediction_app_id",
    "prediction_frame",
    "score_predictions",
]

log = logging.getLogger(__name__)

Role = Literal["serving", "shadow", "canary"]

PREDICTION_SCHEMA = pa.schema(
    [
        pa.field("model", pa.string(), nullable=False),
        pa.field("model_version", pa.int64(), nullable=False),
        pa.field("role", pa.string(), nullable=False),
        pa.field("target", pa.string(), nullable=False),
        pa.field("prediction", pa.float64()),
        pa.field("predicted_class", pa.string()),
        pa.field("probabilities", pa.string()),
        pa.field("entity_key", pa.string()),
        pa.field("event_time", UTC_MICROS),
        pa.field("input_topic", pa.string()),
        pa.field("input_partition", pa.int32()),
        pa.field("input_offset", pa.int64()),
        pa.field("request_id", pa.string()),
        pa.field("front_door", pa.string(), nullable=False),
        pa.field("latency_ms", pa.float64(), nullable=False),
        pa.field("scored_at", UTC_MICROS, nullable=False),
        pa.field("date", pa.date32(), nullable=False),
    ]
)


_POLARS_SCHEMA = pl.DataFrame(PREDICTION_SCHEMA.empty_table()).schema
# (prediction, predicted_class, probabilities): a value, or a classifier's answer.
Answer = tuple[float | None, str | None, str | None]


def classify(proba: dict[Any, float]) -> Answer:
    """A classifier's answer from its class probabilities: the probability of the
    positive class when the classes are True/False or 1/0 (else None), the class it
    predicts (the likeliest, as River's ``predict_one``) and every class's probability,
    both as JSON so each class keeps its type; all None while it cannot predict.

    >>> classify({"path": 0.7, "sky": 0.3})
    (None, '"path"', '[["path", 0.7], ["sky", 0.3]]')
    >>> classify({False: 0.2, True: 0.8})[:2]
    (0.8, 'true')
    """
    if not proba:
        return None, None, None
    best = max(proba, key=proba.__getitem__)
    binary = all(c in (True, False) for c in proba)  # also 1/0, which equal True/False
    positive = float(proba.get(True, 0.0)) if binary else None
    return positive, json.dumps(best), json.dumps([[c, float(p)] for c, p in proba.items()])


def answer_of(record: dict[str, Any], requires_labels: bool) -> Any:
    """What a metric scores from a stored prediction ``record``: the value or predicted
    class (typed again), or the class probabilities; None when there was no answer.
    Records from before classes were stored answer ``prediction >= 0.5``.

    >>> answer_of({"predicted_class": "2", "probabilities": "[[2, 0.9], [0, 0.1]]"}, False)
    {2: 0.9, 0: 0.1}
    """
    if record.get("probabilities") is None and record.get("predicted_class") is None:
        p = record.get("prediction")
        if p is None:
            return None
        return p >= 0.5 if requires_labels else {True: p, False: 1 - p}
    if requires_labels:
        return json.loads(record["predicted_class"])
    return {c: p for c, p in json.loads(record["probabilities"])}


@dataclass(frozen=True)
class Target:
    """Which version serves: the one ``alias`` points at, or a pinned ``version``
    (which then wins over the default alias).

    >>> Target().label, Target(alias="challenger").label, Target(version=3).label
    ('champion', 'challenger', 'v3')
    """

    alias: str | None = "champion"
    version: int | None = None

    def __post_init__(self) -> None:
        if self.version is not None:
            object.__setattr__(self, "alias", None)
        elif not self.alias:
            raise ValueError("a target needs an alias or a version")

    @property
    def label(self) -> str:
        """How predictions, fences and consumer groups name this target."""
        return f"v{self.version}" if self.version is not None else str(self.alias)


def prediction_app_id(model: str, target: str, topic: str, partition: int) -> str:
    """The ``txn`` app id of ``predictions/<model>``: last input offset a target scored.

    >>> prediction_app_id("eta", "champion", "orders", 1)
    'eventlake-predictions:eta:champion:orders:1'
    """
    return f"eventlake-predictions:{model}:{target}:{topic}:{partition}"


def in_canary(key: str, fraction: float) -> bool:
    """Whether entity ``key`` falls in a canary of ``fraction``: a stable hash, the same
    in every process and run, so an entity always sees the same version.

    >>> in_canary("user-1", 1.0), in_canary("user-1", 0.0)
    (True, False)
    >>> sum(in_canary(str(i), 0.25) for i in range(10_000))
    2457
    """
    h = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")
    return h < fraction * 2**64


class ScoringEngine:
    """Scores events for ``spec.name`` with the :class:`Target`'s version, plus the
    launch's challenger (shadow or canary) when the target is an alias.

    >>> engine = ScoringEngine(lake, spec, target=Target(alias="champion"))  # doctest: +SKIP
    >>> engine.score(events).select("model_version", "role", "prediction")  # doctest: +SKIP
    """

    def __init__(
        self,
        lake: Lake,
        spec: ModelSpec,
        *,
        target: Target | None = None,
        front_door: str = "kafka",
        reload_s: float = 2.0,
        online: OnlineFeatures | None = None,
        lock: threading.RLock | None = None,
        auto_refresh: bool = True,
    ) -> None:
        self.lake = lake
        self.spec = spec
        self.target = target or Target()
        self.front_door = front_door
        self.reload_s = reload_s
        self.auto_refresh = auto_refresh  # False: the owner calls refresh() (off the hot path)
        self.registry = ModelRegistry(lake)
        self.reloads = 0
        self._lock = lock or threading.RLock()  # shared by engines sharing ``online``
        self._loaded: dict[Role, ModelVersion] = {}
        self._checked = 0.0
        self.launch = Launch(spec.name)
        self.online = online or OnlineFeatures.load(lake, spec.feature_set)
        self.refresh(force=True)
        self._table: Any = None

    # -- versions ------------------------------------------------------------------

    @property
    def loaded(self) -> dict[str, int]:
        """What serves now: role -> version."""
        return {role: mv.version for role, mv in self._loaded.items()}

    def _serving_version(self) -> int:
        t = self.target
        if t.version is not None:
            return t.version
        assert t.alias is not None
        v = self.registry.alias(self.spec.name, t.alias)
        if v is None and t.alias == "champion":  # nothing promoted yet: the newest
            v = self.registry.next_version(self.spec.name) - 1 or None  # no artifact read
        if v is None:
            raise ModelNotFound(f"alias {t.alias!r} of model {self.spec.name!r}")
        return v

    def refresh(self, *, force: bool = False) -> bool:
        """Re-read the target's version and the launch (at most every ``reload_s`` unless
        ``force``); load what changed. True if anything was swapped."""
        now = time.monotonic()
        if not force and now - self._checked < self.reload_s:
            return False
        self._checked = now
        with self._lock:  # an erasure: the erased events stop counting in the features
            if self.online.follow_erasures(self.lake):
                log.info("%s: online features reloaded after an erasure", self.spec.name)
        wanted: dict[Role, int] = {"serving": self._serving_version()}
        launch = self.launch
        if self.target.alias is not None:  # a pinned version serves alone
            launch = self.registry.launch(self.spec.name)
            if launch.mode != "none" and launch.challenger not in (None, wanted["serving"]):
                assert launch.challenger is not None
                wanted["shadow" if launch.mode == "shadow" else "canary"] = launch.challenger
        with self._lock:
            self.launch = launch
            current = {r: mv.version for r, mv in self._loaded.items()}
            if current == wanted:
                return False
            for role, mv in list(self._loaded.items()):
                if wanted.get(role) != mv.version:
                    self._access(mv.version, role, "unload")
                    del self._loaded[role]
            for role, version in wanted.items():
                if role not in self._loaded:
                    self._loaded[role] = self.registry.load(self.spec.name, version=version)
                    self._access(version, role, "load")
            if current:
                self.reloads += 1
                log.info("%s (%s): now %s (was %s)", self.spec.name, self.target.label,
                         wanted, current)  # fmt: skip
        return True

    def _access(self, version: int, role: Role, event: str) -> None:
        try:
            self.registry.record_access(
                self.spec.name, version, role, event,
                front_door=self.front_door, target=self.target.label,
            )  # fmt: skip
        except Exception as e:  # the access log must never stop serving
            log.warning("could not write the model access log: %s", e)

    def close(self) -> None:
        """Record the unload of every loaded version (the access log's "until")."""
        with self._lock:
            for role, mv in self._loaded.items():
                self._access(mv.version, role, "unload")
            self._loaded = {}

    # -- scoring -------------------------------------------------------------------

    def score(
        self, events: pl.DataFrame, *, request_id: str | None = None, observe: bool = True
    ) -> pl.DataFrame:
        """Prediction records for ``events`` (silver rows of the feature set's source):
        one per event and role. With ``observe``, the events then join the online state
        (a stream's events; a request's "what if" events do not)."""
        if events.is_empty():
            return pl.DataFrame(PREDICTION_SCHEMA.empty_table())
        started = time.perf_counter()
        if self.auto_refresh:
            self.refresh()
        fs = self.spec.feature_set
        with self._lock:
            rows = self.online.features(events)
            if observe:
                self.online.observe(events)
            loaded, launch = dict(self._loaded), self.launch
        xs = [_clean(x) for x in rows.select(self.spec.feature_names).iter_rows(named=True)]
        meta = rows.select(fs.key, fs.event_time, *COORDINATES, DATE).rows()
        return prediction_frame(self._records(xs, meta, loaded, launch, request_id, started))

    def score_rows(
        self,
        rows: list[dict[str, Any]],
        *,
        request_id: str | None = None,
        local: list[dict[str, Any]] | None = None,
    ) -> list[dict[str, Any]]:
        """:meth:`score` for a few source-shaped dicts (a request's events), as dicts,
        without building frames; never observed. ``local``: their row-local features,
        if computed already (:func:`features.online.row_local_dicts`)."""
        if not rows:
            return []
        started = time.perf_counter()
        if self.auto_refresh:
            self.refresh()
        fs, names = self.spec.feature_set, self.spec.feature_names
        with self._lock:
            feats = self.online.feature_dicts(rows, local)
            loaded, launch = dict(self._loaded), self.launch
        xs = [_clean({n: f[n] for n in names}) for f in feats]
        cols = (fs.key, fs.event_time, *COORDINATES, DATE)
        meta = [tuple(r.get(c) for c in cols) for r in rows]
        return self._records(xs, meta, loaded, launch, request_id, started)

    def _records(
        self,
        xs: list[dict[str, Any]],
        meta: list[tuple[Any, ...]],
        loaded: dict[Role, ModelVersion],
        launch: Launch,
        request_id: str | None,
        started: float,
    ) -> list[dict[str, Any]]:
        """One record per event and role, in event order (each event's roles together,
        as a request's answer lists them)."""
        keys = [None if m[0] is None else str(m[0]) for m in meta]
        canary = [in_canary(k or "", launch.fraction) for k in keys] if "canary" in loaded else []
        made: list[tuple[int, str, int, Answer]] = []
        for role, mv in loaded.items():
            if role == "shadow":  # everything, never answered
                idx = list(range(len(xs)))
            elif canary:  # the canary its entities, the serving version the others
                idx = [i for i, c in enumerate(canary) if c == (role == "canary")]
            else:
                idx = list(range(len(xs)))
            preds = self._predict(mv.model, [xs[i] for i in idx])
            made += [(i, role, mv.version, p) for i, p in zip(idx, preds, strict=True)]
        made.sort(key=lambda m: m[0])
        now = dt.datetime.now(dt.UTC)
        latency_ms = (time.perf_counter() - started) * 1000
        name, target, door = self.spec.name, self.target.label, self.front_door
        return [
            {
                "model": name, "model_version": version, "role": role, "target": target,
                "prediction": p[0], "predicted_class": p[1], "probabilities": p[2],
                "entity_key": keys[i], "event_time": meta[i][1],
                "input_topic": meta[i][2], "input_partition": meta[i][3],
                "input_offset": meta[i][4], "request_id": request_id, "front_door": door,
                "latency_ms": latency_ms, "scored_at": now, "date": meta[i][5],
            }
            for i, role, version, p in made
        ]  # fmt: skip

    def _predict(self, model: Any, xs: list[dict[str, Any]]) -> list[Answer]:
        if self.spec.task == "classification":
            return [classify(model.predict_proba_one(x)) for x in xs]
        return [(None if (y := model.predict_one(x)) is None else float(y), None, None)
                for x in xs]  # fmt: skip

    # -- the lake ------------------------------------------------------------------

    def _predictions(self) -> Any:
        if self._table is None:
            self._table = self.lake.open_or_create(
                predictions_table(self.spec.name), PREDICTION_SCHEMA, partition_by=["date"]
            )
        return self._table

    def committed(self, topic: str, partitions: list[int]) -> dict[int, int | None]:
        """The last input offset this target scored per partition (None: none yet)."""
        table = self._predictions()
        table.update_incremental()
        return txn_versions(table, self._app_id(topic), partitions)

    def _app_id(self, topic: str) -> Any:
        return lambda p: prediction_app_id(self.spec.name, self.target.label, topic, p)

    def write(self, predictions: pl.DataFrame) -> AppendResult | None:
        """Append Kafka ``predictions`` (every role of a batch in one commit), once per
        (target, input offset)."""
        if predictions.is_empty():
            return None
        table = predictions.to_arrow().cast(PREDICTION_SCHEMA)
        topic = table.column("input_topic")[0].as_py()
        return fenced_append(
            self._predictions(),
            table,
            app_id=self._app_id(topic),
            partition="input_partition",
            offset="input_offset",
            partition_by=["date"],
            storage_options=self.lake.storage_options,
            label=predictions_table(self.spec.name),
            schema_mode="merge",  # tables from before predicted_class/probabilities
        )


def prediction_frame(records: list[dict[str, Any]]) -> pl.DataFrame:
    """Prediction records (dicts, as :meth:`ScoringEngine.score_rows` makes) as a frame
    typed as ``predictions/<model>``."""
    return pl.DataFrame(records, schema=_POLARS_SCHEMA)


def append_predictions(lake: Lake, model: str, predictions: pl.DataFrame) -> None:
    """Append request ``predictions`` (no Kafka offsets to fence by) to ``predictions/<model>``."""
    if predictions.is_empty():
        return
    table = lake.open_or_create(predictions_table(model), PREDICTION_SCHEMA, partition_by=["date"])
    write_deltalake(
        table,
        predictions.to_arrow().cast(PREDICTION_SCHEMA),
        mode="append",
        schema_mode="merge",  # tables from before predicted_class/probabilities
        partition_by=["date"],
        storage_options=lake.storage_options,
    )


def _clean(x: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in x.items() if v is not None}


def labeled_predictions(lake: Lake, model: str, feature_set: str) -> pl.LazyFrame | None:
    """``predictions/<model>`` of Kafka events joined with the labels that have arrived in
    ``features/<feature_set>`` (by the input's lineage); None if either table is missing."""
    try:
        preds = lake.scan(predictions_table(model))
        labels = lake.scan(features(feature_set)).filter(pl.col("label").is_not_null())
    except TableNotInLake:
        return None
    return preds.join(
        labels.select(*COORDINATES, "label"),
        left_on=["input_topic", "input_partition", "input_offset"],
        right_on=list(COORDINATES),
    )


def score_predictions(spec: ModelSpec, labeled: pl.DataFrame) -> tuple[float, list[float]]:
    """(the spec's metric, each row's error) of ``labeled`` prediction records (with
    their ``label``), in their order; a prediction without an answer is not scored by
    the metric, as River skips it, and counts its :meth:`ModelSpec.error`.

    >>> rows = pl.DataFrame({"label": [3.0, 5.0], "prediction": [1.0, 5.0]})
    >>> score_predictions(spec, rows)  # doctest: +SKIP
    (1.0, [2.0, 0.0])
    """
    metric, errors = spec.make_metric(), []
    needs = getattr(metric, "requires_labels", True)
    classes = spec.task == "classification"
    for r in labeled.iter_rows(named=True):
        y = r["label"]
        if not classes:
            label = y_pred = r["prediction"]
        else:
            if r.get("predicted_class") is None:  # written when classes were True/False
                y = bool(y)
            label, y_pred = answer_of(r, True), answer_of(r, needs)
        if y_pred is not None and y_pred != {}:  # as River: no answer, not scored
            metric.update(y, y_pred)
        errors.append(spec.error(y, label))
    return float(metric.get()), errors


def live_metrics(
    lake: Lake,
    spec: ModelSpec,
    days: tuple[dt.date, dt.date] | None = None,
    *,
    by_version: bool = True,
) -> pl.DataFrame:
    """The spec's metric and mean per-row error (:meth:`ModelSpec.error`) per model
    version and role over predictions whose label has arrived (of events on ``days``,
    first and last inclusive, if given; per role only, ``model_version`` null, without
    ``by_version``).

    Columns: ``model_version``, ``role``, ``labeled`` (predictions with a label), the
    metric, ``mean_error``.
    """
    labeled = labeled_predictions(lake, spec.name, spec.feature_set.name)
    if labeled is None:
        return pl.DataFrame()
    if days is not None:
        labeled = labeled.filter(pl.col("event_time").dt.date().is_between(*days))
    if not by_version:
        labeled = labeled.with_columns(pl.lit(None, pl.Int64).alias("model_version"))
    joined = labeled.sort("event_time").collect()
    out = []
    name = type(spec.make_metric()).__name__
    for (version, role), group in joined.group_by(["model_version", "role"], maintain_order=True):
        metric, errors = score_predictions(spec, group)
        out.append(
            {
                "model_version": version,
                "role": role,
                "labeled": group.height,
                name: metric,
                "mean_error": sum(errors) / len(errors),
            }
        )
    return pl.DataFrame(out).sort("model_version", "role") if out else pl.DataFrame()
