"""`eventlake serve`: the scoring engine's HTTP front door (FastAPI on uvicorn).

Routes (OpenAPI at ``/openapi.json``, docs at ``/docs``):

- ``POST /models/{name}/predict``: predictions for one or many events (typed as
  the model's source events; see :mod:`orchestration.serving.requests`), by the
  champion, an ``alias`` or a pinned ``version``. Canary entities are answered
  by the challenger; shadow predictions are recorded, never returned.
- ``POST /topics/{topic}/events``: events produced to Kafka in the registry's
  Avro framing, so they land in the lake (and the learning loop) like any other.
- ``GET /models``, ``GET /models/{name}``: versions, aliases, launch configuration.
- ``GET /health`` (alive), ``GET /ready`` (every model has a version loaded),
  ``GET /metrics`` (Prometheus).

Every request's predictions (every role) are appended to ``predictions/<model>``
with the request id by a background writer, every 5 s (one commit per model). Feature state
is the engine's online state, following the lake every ``catch_up_s`` seconds
(or shared through Redis with the scorers: :mod:`orchestration.serving.online_store`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import logging
import queue
import threading
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import polars as pl
from fastapi import FastAPI, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from features import FeatureSet, OnlineFeatures
from features.online import row_local_dicts
from ingest import EventProducer, InvalidEvent
from lake import Lake, SchemaNotFound, SchemaStore
from lake.names import (
    COORDINATES,
    DATE,
    KAFKA_TIMESTAMP,
    SubjectStrategy,
    subject,
    topic_of_subject,
)
from orchestration.serving.metrics import ServingMetrics
from orchestration.serving.online_store import load_online
from orchestration.serving.requests import MAX_EVENTS, predict_request_model
from training import (
    ModelNotFound,
    ModelRegistry,
    ModelSpec,
    ScoringEngine,
    Target,
    append_predictions,
    prediction_frame,
)
from training.scoring import answer_of

__all__ = ["ModelServer", "PredictionLog", "create_app"]

log = logging.getLogger(__name__)


def _texts(probabilities: dict[Any, float]) -> dict[str, float]:
    """Class probabilities with the classes as JSON object keys (text)."""
    return {str(c): p for c, p in probabilities.items()}


PREDICT_ROUTE = "/models/{name}/predict"  # an HTTP route (one per model), not a table


class Prediction(BaseModel):
    """One answered prediction."""

    entity_key: str | None
    prediction: float | None = Field(
        description="The value (regression), or the probability of the positive class "
        "(True/1) for a two-class model; None while the model cannot predict yet"
    )
    predicted_class: bool | int | float | str | None = Field(
        None, description="A classifier's predicted class, typed as its labels are"
    )
    probabilities: dict[str, float] | None = Field(
        None, description="A classifier's probability of each class (classes as text)"
    )
    model_version: int
    role: str = Field(description="serving, or canary when the challenger answered")


class PredictResponse(BaseModel):
    """The answer to a predict request."""

    model: str
    request_id: str
    predictions: list[Prediction]


class EventsRequest(BaseModel):
    """Events to produce to a topic (each one a record of the subject's newest schema)."""

    events: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_EVENTS)
    key_field: str | None = Field(None, description="The field whose value keys the record.")
    record: str | None = Field(
        None, description="The record's full name (record and topic_record strategies)."
    )


class EventsResponse(BaseModel):
    """Where the events went."""

    topic: str
    subject: str
    schema_id: int
    offsets: list[tuple[int, int]] = Field(description="(partition, offset) of each event")


class ModelServer:
    """One model behind the HTTP front door: its online features (shared by every
    target), and an engine per target, made on first use."""

    def __init__(
        self,
        lake: Lake,
        spec: ModelSpec,
        *,
        reload_s: float = 2.0,
        online_store_url: str | None = None,
    ) -> None:
        self.lake, self.spec, self.reload_s = lake, spec, reload_s
        self.online_store_url = online_store_url
        self.lock = threading.RLock()
        self._online: OnlineFeatures | None = None
        self._engines: dict[str, ScoringEngine] = {}

    @property
    def online(self) -> OnlineFeatures:
        """The online feature state, loaded from the lake on first use."""
        with self.lock:
            if self._online is None:
                self._online = load_online(self.lake, self.spec.feature_set,
                                           self.online_store_url)  # fmt: skip
            return self._online

    def engine(self, target: Target) -> ScoringEngine:
        """The engine of ``target``; raises :class:`ModelNotFound` if it names nothing."""
        engine = self._engines.get(target.label)  # the hot path: no lock
        if engine is not None:
            return engine
        with self.lock:
            engine = self._engines.get(target.label)
            if engine is None:
                engine = ScoringEngine(
                    self.lake, self.spec, target=target, front_door="http",
                    reload_s=self.reload_s, online=self.online, lock=self.lock,
                    auto_refresh=False,  # refresh() runs on the follower thread
                )  # fmt: skip
                self._engines[target.label] = engine
            return engine

    def catch_up(self) -> int:
        """Observe what ingest has added to the source since (read outside the lock, so
        requests are not held up by the lake)."""
        if self._online is None:
            return 0
        recent = self.online.unseen(self.lake)
        with self.lock:
            return self.online.observe(recent)

    def refresh(self) -> None:
        """Re-read aliases and launches for every engine (swapping what changed)."""
        for engine in list(self._engines.values()):
            engine.refresh()

    def serving(self) -> dict[str, dict[str, int]]:
        """What this process serves now, per target: role -> version."""
        return {label: e.loaded for label, e in list(self._engines.items())}

    def close(self) -> None:
        """Record the unload of every engine's versions."""
        for engine in self._engines.values():
            engine.close()


class RowLocalBatcher:
    """Evaluates the row-local features of every request that became ready in the same
    event-loop turn in one Polars query (a query costs ~0.3 ms to plan however few its
    rows; measured), then hands each request its rows. Aggregations stay per request:
    one request's events never count another's."""

    def __init__(self, fs: FeatureSet) -> None:
        self.fs = fs
        self._pending: list[tuple[list[dict[str, Any]], asyncio.Future[Any]]] = []

    async def compute(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The row-local features of ``rows``, evaluated with the others of this turn."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((rows, future))
        if len(self._pending) == 1:
            loop.call_soon(self._run)
        result: list[dict[str, Any]] = await future
        return result

    def _run(self) -> None:
        batch, self._pending = self._pending, []
        try:
            local = row_local_dicts(self.fs, [r for rows, _ in batch for r in rows])
        except Exception as e:  # every request of the batch learns it
            for _, future in batch:
                future.set_exception(e)
            return
        i = 0
        for rows, future in batch:
            future.set_result(local[i : i + len(rows)])
            i += len(rows)


class PredictionLog:
    """Appends request predictions to the lake from a background thread, in batches."""

    def __init__(self, lake: Lake, every_s: float = 5.0) -> None:
        self.lake, self.every_s = lake, every_s
        self._queue: queue.Queue[list[dict[str, Any]]] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def put(self, records: list[dict[str, Any]]) -> None:
        """Queue prediction ``records`` for the next write."""
        self._queue.put(records)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.flush()

    def flush(self) -> None:
        """Write what is queued, one commit per model."""
        records: list[dict[str, Any]] = []
        while True:
            try:
                records += self._queue.get_nowait()
            except queue.Empty:
                break
        if not records:
            return
        for (model,), group in prediction_frame(records).group_by(["model"]):
            try:
                append_predictions(self.lake, str(model), group)
            except Exception as e:  # the log must never stop serving
                log.error("could not record %d predictions of %s: %s", group.height, model, e)

    def close(self) -> None:
        """Stop the thread and write what is left."""
        self._stop.set()
        self._thread.join(10)
        self.flush()


def create_app(
    lake: Lake,
    specs: list[ModelSpec],
    *,
    bootstrap_servers: str | None = None,
    registry_url: str | None = None,
    subject_strategy: SubjectStrategy = "topic",
    reload_s: float = 2.0,
    catch_up_s: float = 1.0,
    metrics: ServingMetrics | None = None,
    online_store_url: str | None = None,
    client_options: dict[str, str | int | float | bool] | None = None,
) -> FastAPI:
    """The HTTP front door for ``specs`` over ``lake``; events are posted to Kafka at
    ``bootstrap_servers`` with ``client_options`` (the route is absent without one).

    >>> app = create_app(Lake("./lake"), [eta], bootstrap_servers=b)  # doctest: +SKIP
    >>> uvicorn.run(app, host="127.0.0.1", port=8000)                 # doctest: +SKIP
    """
    metrics = metrics or ServingMetrics()
    registry = ModelRegistry(lake)
    servers = {
        s.name: ModelServer(lake, s, reload_s=reload_s, online_store_url=online_store_url)
        for s in specs
    }
    store = SchemaStore.open(lake)
    producer = (
        EventProducer(bootstrap_servers, store, registry_url, client_options=client_options)
        if bootstrap_servers
        else None
    )
    predictions = PredictionLog(lake)
    stop = threading.Event()

    def follow_lake() -> None:
        """Off the request path: alias moves and launches every ``reload_s``, the lake's
        new events every ``catch_up_s``."""
        last_catch_up = time.monotonic()
        while not stop.wait(max(0.05, min(reload_s, catch_up_s))):
            catch_up = time.monotonic() - last_catch_up >= catch_up_s
            for server in servers.values():
                try:
                    server.refresh()
                    if catch_up:
                        server.catch_up()
                except Exception as e:  # keep serving on the state we have
                    log.warning("%s: following the lake failed: %s", server.spec.name, e)
            if catch_up:
                last_catch_up = time.monotonic()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        for server in servers.values():  # warm up: load state and champion now
            try:
                server.engine(Target())
            except ModelNotFound as e:
                log.warning("%s: not ready (%s)", server.spec.name, e)
        # Everything loaded so far (modules, models, the online state) lives as long as
        # the server: out of the cyclic collector's sight, a full collection no longer
        # walks it in the middle of a request.
        gc.freeze()
        follower = threading.Thread(target=follow_lake, name="follow-lake", daemon=True)
        follower.start()
        yield
        stop.set()
        follower.join(10)
        predictions.close()
        for server in servers.values():
            server.close()

    app = FastAPI(
        title="eventlake serving",
        version="1",
        description="Predictions from eventlake's models; events into the lake.",
        lifespan=lifespan,
    )

    @app.exception_handler(ModelNotFound)
    async def not_found(_: Request, e: ModelNotFound) -> JSONResponse:
        return JSONResponse(status_code=404, content={"detail": str(e)})

    @app.get("/health", tags=["ops"])
    def health() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/ready", tags=["ops"], responses={503: {"description": "A model has no version"}})
    def ready() -> JSONResponse:
        """Every model has its champion (or newest version) loaded."""
        missing = {}
        for name, server in servers.items():
            try:
                server.engine(Target())
            except ModelNotFound as e:
                missing[name] = str(e)
        body = {"ready": not missing, "models": sorted(servers), "missing": missing}
        return JSONResponse(status_code=503 if missing else 200, content=body)

    @app.get("/metrics", include_in_schema=False)
    def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/models", tags=["models"])
    def list_models() -> list[dict[str, Any]]:
        """Every served model with its versions, aliases and launch."""
        return [_describe(registry, name) for name in sorted(servers)]

    @app.get("/models/{name}", tags=["models"], responses={404: {"description": "No such model"}})
    def get_model(name: str) -> dict[str, Any]:
        """One model's versions, aliases and launch configuration, and what this process
        serves now (``serving``: target -> role -> version)."""
        if name not in servers:
            raise HTTPException(404, f"model {name!r} is not served here ({', '.join(servers)})")
        return {**_describe(registry, name), "serving": servers[name].serving()}

    for spec in specs:
        _add_predict_route(app, lake, servers[spec.name], predictions, metrics)

    if producer is not None:
        known = (topic_of_subject(x, subject_strategy) for x in _subjects(store))
        topics = sorted({t for t in known if t}) or ["orders"]

        def post_events(topic: str, body: EventsRequest) -> EventsResponse:
            """Produce events to ``topic`` in the registry's Avro framing."""
            subj = subject(topic, subject_strategy, body.record)
            if subj is None:
                raise _invalid(("body", "record"), f"required under the {subject_strategy} "
                               "subject strategy: the record's full name")  # fmt: skip
            try:
                schema_id, _ = producer.schema(subj)
                offsets = producer.send(topic, subj, body.events, key_field=body.key_field)
            except SchemaNotFound as e:
                raise HTTPException(404, f"{e}: register the schema of {subj!r} first") from None
            except InvalidEvent as e:
                loc = ("body", "key_field") if e.index < 0 else ("body", "events", e.index, e.field)
                raise _invalid(loc, e.problem) from None
            return EventsResponse(topic=topic, subject=subj, schema_id=schema_id, offsets=offsets)

        # Typed here, not in the signature: the examples are this app's topics.
        post_events.__annotations__["topic"] = Annotated[
            str, PathParam(examples=topics, description="A topic with a registered value schema")
        ]
        app.post(
            "/topics/{topic}/events",
            tags=["events"],
            status_code=202,
            responses={404: {"description": "No schema for the topic's subject"}},
        )(post_events)

    return app


def _subjects(store: SchemaStore) -> list[str]:
    try:
        return store.subjects()
    except Exception:  # an empty registry: no examples
        return []


def _invalid(loc: tuple[Any, ...], msg: str) -> HTTPException:
    """A 422 shaped like FastAPI's own validation errors (``loc`` names the field)."""
    return HTTPException(422, [{"loc": list(loc), "msg": msg, "type": "value_error"}])


def _add_predict_route(
    app: FastAPI,
    lake: Lake,
    server: ModelServer,
    log_: PredictionLog,
    metrics: ServingMetrics,
) -> None:
    spec = server.spec
    if not lake.exists(spec.feature_set.source):
        log.warning("%s: %s is not in the lake yet; no predict route", spec.name,
                    spec.feature_set.source)  # fmt: skip
        return
    dtypes = lake.scan(spec.feature_set.source).collect_schema()
    request_model = predict_request_model(spec, dtypes)
    zones = {c: d.time_zone for c, d in dtypes.items() if isinstance(d, pl.Datetime)}
    batcher = RowLocalBatcher(spec.feature_set)

    async def predict(body: Any) -> PredictResponse:  # typed below, per model
        # On the event loop: a request costs well under a millisecond of CPU, less than
        # a hop to the thread pool and back (measured with hey).
        target = Target(version=body.version) if body.version else Target(body.alias or "champion")
        rid = body.request_id or uuid.uuid4().hex
        t0 = time.perf_counter()
        try:
            engine = server.engine(target)
            rows = _rows(spec, body.events, zones)
            local = await batcher.compute(rows)
            records = engine.score_rows(rows, request_id=rid, local=local)
        except Exception as e:
            kind = "not_found" if isinstance(e, ModelNotFound) else type(e).__name__
            metrics.errors.labels(spec.name, "http", kind).inc()
            raise
        metrics.count(records, time.perf_counter() - t0)
        log_.put(records)
        return PredictResponse(
            model=spec.name,
            request_id=rid,
            predictions=[
                Prediction(entity_key=r["entity_key"], prediction=r["prediction"],
                           predicted_class=answer_of(r, True) if r["predicted_class"] else None,
                           probabilities=_texts(answer_of(r, False))
                           if r["probabilities"] else None,
                           model_version=r["model_version"], role=r["role"])
                for r in records if r["role"] != "shadow"
            ],
        )  # fmt: skip

    predict.__annotations__["body"] = request_model
    app.post(
        PREDICT_ROUTE.format(name=spec.name),
        tags=["predict"],
        summary=f"Predict with {spec.name}",
        responses={404: {"description": "No such version or alias"}},
        name=f"predict_{spec.name}",
    )(predict)


def _rows(
    spec: ModelSpec, events: list[BaseModel], zones: dict[str, str | None]
) -> list[dict[str, Any]]:
    """Request events as silver-shaped dicts: times in the silver column's zone, no Kafka
    coordinates, Kafka's timestamp now, the date of the event time."""
    now = dt.datetime.now(dt.UTC)
    rows = []
    for e in events:
        r = e.model_dump()
        for c, zone in zones.items():
            v = r.get(c)
            if isinstance(v, dt.datetime):
                r[c] = _in_zone(v, zone)
        r[KAFKA_TIMESTAMP] = _in_zone(now, zones.get(KAFKA_TIMESTAMP, "UTC"))
        r.update(dict.fromkeys(COORDINATES))
        t = r.get(spec.feature_set.event_time)
        r[DATE] = t.date() if isinstance(t, dt.datetime) else None
        rows.append(r)
    return rows


def _in_zone(v: dt.datetime, zone: str | None) -> dt.datetime:
    """``v`` as the lake holds it: aware in UTC (naive input taken as UTC), or naive."""
    if zone is None:
        return v.astimezone(dt.UTC).replace(tzinfo=None) if v.tzinfo else v
    return v.replace(tzinfo=dt.UTC) if v.tzinfo is None else v.astimezone(dt.UTC)


def _describe(registry: ModelRegistry, name: str) -> dict[str, Any]:
    launch = registry.launch(name)
    versions = registry.versions(name)
    return {
        "name": name,
        "versions": [
            {
                "version": r["version"],
                "kind": r["kind"],
                "created_at": str(r["created_at"]),
                "rows": r["rows"],
                "metrics": r["metrics"],
            }
            for r in versions.iter_rows(named=True)
        ],
        "aliases": registry.aliases(name),
        "launch": {
            "mode": launch.mode,
            "challenger": launch.challenger,
            "fraction": launch.fraction,
            "by": launch.by,
            "reason": launch.reason,
            "set_at": str(launch.set_at) if launch.set_at else None,
        },
    }
