"""``eventlake demo``: the whole product, on the embedded default, in a few minutes.

A simulated food-delivery app (:mod:`orchestration.demo.simulation`) sends
``order_placed`` and, later in event time, ``order_delivered`` events through
the embedded broker, with Confluent's serializer against eventlake's own schema
registry. On a simulated clock (:mod:`orchestration.demo.timeline`), the demo
then runs what a deployment runs: an ingester (bronze and silver, reported to
Dagster) and a scorer running all along, the online model learning every step,
the day's silver and feature partitions, and the real drift sensor, shadow sensor
and nightly retrain schedule, evaluated by Dagster, deciding on batch retraining
and promotion; finally it compacts the lake. Midway the app upgrades to schema
v2, and later the world drifts.

Everything stays in ``--root``: the lake, and the Dagster instance whose UI
(`eventlake ui --root DIR`) shows the materialized history.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import dagster as dg
import polars as pl

from ingest import (
    EmbeddedBroker,
    Ingester,
    IngestOptions,
    SchemaRegistryServer,
    ensure_topic,
    wait_for_broker,
)
from lake import Lake, SchemaStore, maintain_lake
from lake.names import DEAD_LETTERS, predictions
from orchestration.defs import build_definitions
from orchestration.defs.automation import (
    learn_job_name,
)
from orchestration.defs.reports import bronze_reporter
from orchestration.defs.resources import LakeResource
from orchestration.demo.definitions import DELIVERED_TOPIC, ETA, ORDERS_TOPIC
from orchestration.demo.simulation import EventPublisher, FoodDeliveryWorld
from orchestration.demo.timeline import STEP, Timeline
from orchestration.errors import DemoError
from orchestration.plots import metric_plot
from orchestration.serving import run_scoring
from orchestration.settings import Settings
from training import ModelRegistry
from training.serving_gap import ServingGap, serving_gap

__all__ = ["DemoReport", "run_demo"]

ORDERS_PER_HOUR = 40
PARTITIONS = 2


def history_start(orders: int, now: dt.datetime | None = None) -> dt.datetime:
    """When the simulated app opened: early enough that ``orders`` at
    :data:`ORDERS_PER_HOUR` (and their deliveries) are over by ``now``, so the lake's
    days are the partitions the UI shows, up to today.

    >>> history_start(960, dt.datetime(2026, 11, 23, 9, 30, tzinfo=dt.UTC))
    datetime.datetime(2026, 11, 22, 7, 0, tzinfo=datetime.timezone.utc)
    """
    now = now or dt.datetime.now(dt.UTC)
    opened = now - dt.timedelta(hours=orders / ORDERS_PER_HOUR + 2)  # + the last deliveries
    return opened.replace(minute=0, second=0, microsecond=0)


@dataclass
class DemoReport:
    """What the demo did, for the summary it prints."""

    lake_root: str
    dagster_home: str
    events: dict[str, int] = field(default_factory=dict)
    tables: list[tuple[str, int, int]] = field(default_factory=list)  # name, rows, version
    schema_versions: dict[str, int] = field(default_factory=dict)
    dead_letters: int = 0
    models: pl.DataFrame = field(default_factory=pl.DataFrame)
    drift: pl.DataFrame = field(default_factory=pl.DataFrame)
    champion: int | None = None
    predictions: int = 0
    plot: str = ""
    gap: ServingGap | None = None  # what was served vs what was learned
    seconds: float = 0.0


class _Pipeline:
    """The demo's Dagster side: the UI's own definitions and their named jobs, run
    in-process into a real instance (the sensors' and schedule's runs too, launched by
    :class:`~orchestration.demo.timeline.Timeline` as the daemon would, by job name)."""

    def __init__(self, settings: Settings, instance: dg.DagsterInstance) -> None:
        self.defs = build_definitions(settings)
        self.resources = {"lake": LakeResource.from_settings(settings)}
        self.instance = instance

    def run(
        self,
        job: str,
        partition: str | None = None,
        reason: str = "demo",
        tags: dict[str, str] | None = None,
    ) -> None:
        """Run job ``job`` (for day ``partition``) as the UI would, under its own name;
        ``tags``: a sensor's or schedule's run request's."""
        tags = {**(tags or {}), "eventlake/reason": reason}
        if partition is not None:  # as a partition run launched from the UI is tagged
            tags["dagster/partition"] = partition
        result = self.defs.resolve_job_def(job).execute_in_process(
            instance=self.instance, partition_key=partition, tags=tags, run_config=_QUIET
        )
        if not result.success:
            raise RuntimeError(f"job {job} failed; see the run in the Dagster UI")


_QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def run_demo(
    root: str,
    settings: Settings,
    *,
    orders: int = 3000,
    step: dt.timedelta = STEP,
    live: threading.Event | None = None,
    echo: Callable[[str], None] = print,
) -> DemoReport:
    """Run the demo under ``root`` (``root/lake``, ``root/dagster``); see the module doc.

    ``settings`` supply the broker (none: the embedded one) and anything else
    the user set; the demo sets its lake, partitions and training windows. ``step``: the
    simulated clock's step (:mod:`orchestration.demo.timeline`). With
    ``live`` (an event that stops it), keep producing, ingesting and scoring in
    real time after the history until it is set.
    """
    bootstrap_servers = settings.kafka_bootstrap_servers
    t0 = time.monotonic()
    _fresh_root(root, echo)
    lake = Lake(os.path.abspath(os.path.join(root, "lake")))
    home = os.path.abspath(os.path.join(root, "dagster"))
    os.makedirs(home, exist_ok=True)
    open(os.path.join(home, "dagster.yaml"), "a").close()  # an empty instance config
    report = DemoReport(lake.root, home)
    broker = None if bootstrap_servers else EmbeddedBroker().start()
    bs = bootstrap_servers or broker.bootstrap_servers  # type: ignore[union-attr]
    try:
        admin = wait_for_broker(bs, wait_s=30)
        for topic in (ORDERS_TOPIC, DELIVERED_TOPIC):
            ensure_topic(admin, topic, bootstrap_servers=bs, create=True, partitions=PARTITIONS)
        opened = history_start(orders)
        settings = settings.model_copy(
            update={
                "lake_root": lake.root,
                "partitions_start": str(opened.date()),  # the lake's first day, once ingested
                "kafka_bootstrap_servers": bs,
                "holdout_days": 0.5,
                "retrain_window_days": 1.5,
                "definitions": "orchestration.demo.definitions",
            }
        )
        instance = dg.DagsterInstance.from_config(home)
        pipeline = _Pipeline(settings, instance)
        world = FoodDeliveryWorld(
            start=opened,
            orders_per_hour=ORDERS_PER_HOUR,
            upgrade_after=int(orders * 0.4),
            drift_after=int(orders * 0.6),
        )
        with SchemaRegistryServer(SchemaStore.open(lake)) as registry_api:
            echo(
                f"embedded broker {bs}, schema registry {registry_api.url}, lake {lake.root}, "
                f"Dagster instance {home}"
            )
            app = EventPublisher(bs, registry_api.url)
            events = list(world.events(orders))
            Timeline(
                spec=ETA,
                topics=(ORDERS_TOPIC, DELIVERED_TOPIC),
                bootstrap_servers=bs,
                lake=lake,
                app=app,
                instance=instance,
                defs=pipeline.defs,
                resources=pipeline.resources,
                run=pipeline.run,
                echo=echo,
                step=step,
            ).play(events)
            report.events = dict(app.sent)
            reports = list(maintain_lake(lake))
            echo(f"maintenance: compacted and checkpointed {len(reports)} tables")
            if live is not None:
                _live(pipeline, app, bs, lake, instance, orders, live, echo)
                report.events = dict(app.sent)
        _summarize(report, lake)
        if world.drift_at is not None:
            report.gap = serving_gap(
                lake, ETA, world.drift_at, holdout=dt.timedelta(days=settings.holdout_days)
            )
    finally:
        if broker is not None:
            broker.stop()
    report.seconds = time.monotonic() - t0
    return report


_MARKER = ".eventlake-demo"


def _fresh_root(root: str, echo: Callable[[str], None]) -> None:
    """Start from an empty ``root``: a previous demo's folder is replaced (its broker and
    topics are gone with it), anything else is refused."""
    marker = os.path.join(root, _MARKER)
    if os.path.exists(marker):
        echo(f"replacing the previous demo in {root}")
        for sub in ("lake", "dagster"):
            shutil.rmtree(os.path.join(root, sub), ignore_errors=True)
    elif os.path.isdir(root) and os.listdir(root):
        raise DemoError(
            f"{root} is not empty and was not made by `eventlake demo`; "
            "pass --root with a new or empty folder"
        )
    os.makedirs(root, exist_ok=True)
    open(marker, "w").close()


def _ingest(bs: str, lake: Lake, instance: dg.DagsterInstance) -> dict[str, int]:
    topics = (ORDERS_TOPIC, DELIVERED_TOPIC)
    summary = Ingester(  # one process, one consumer, every topic of the demo
        IngestOptions(bootstrap_servers=bs, topics=topics, lake=lake, decode_avro=True),
        on_commit=bronze_reporter(instance),
    ).run(until_caught_up=True)
    return {t: summary.topics[t].records if t in summary.topics else 0 for t in topics}


def _live(
    pipeline: _Pipeline,
    app: EventPublisher,
    bs: str,
    lake: Lake,
    instance: dg.DagsterInstance,
    first: int,
    stop: threading.Event,
    echo: Callable[[str], None],
) -> None:
    """Run the app on in real time until ``stop``: 5 orders a second, event time 60x
    faster than the clock (a delivery 30 minutes later arrives 30 s later), ingest and
    learn every 10 s, score continuously."""
    speedup, per_second = 60.0, 5.0
    echo(f"live: {per_second:g} orders/s, event time {speedup:g}x the clock; Ctrl-C stops")
    scorer = threading.Thread(
        target=run_scoring,
        kwargs=dict(bootstrap_servers=bs, lake=lake, spec=ETA, topic=ORDERS_TOPIC, stop=stop),
        daemon=True,
    )
    scorer.start()
    start = dt.datetime.now(dt.UTC)
    gap_s = speedup / per_second  # event-time seconds between orders
    world = FoodDeliveryWorld(  # order ids go on from the history's, event time from now
        seed=11,
        start=start - dt.timedelta(seconds=first * gap_s),
        orders_per_hour=3600 / gap_s,
    )
    clock0, last_cycle, sent = time.monotonic(), time.monotonic(), 0
    for event in world.events(10**9, first=first):
        at = event.at
        due = clock0 + (at - start).total_seconds() / speedup
        if stop.wait(max(0.0, due - time.monotonic())):
            break
        app.send(event)
        sent += event.topic == ORDERS_TOPIC
        if time.monotonic() - last_cycle >= 10:
            app.flush()
            _ingest(bs, lake, instance)
            pipeline.run(learn_job_name(ETA.name), reason="live")
            echo(f"live: {sent} orders so far, event time {at:%Y-%m-%d %H:%M}")
            last_cycle = time.monotonic()
    app.flush()
    scorer.join(30)


def _summarize(report: DemoReport, lake: Lake) -> None:
    for name in lake.names():
        info = lake.info(name)
        report.tables.append((name, info.rows, info.version))
    store = SchemaStore.open(lake)
    for subject in store.subjects():
        report.schema_versions[subject] = len(store.versions(subject))
    report.dead_letters = lake.info(DEAD_LETTERS).rows if lake.exists(DEAD_LETTERS) else 0
    models = ModelRegistry(lake)
    report.models = models.versions(ETA.name).select(
        "version", "kind", "rows", "metrics", "event_time_to"
    )
    report.drift = models.drift(ETA.name)
    report.champion = models.alias(ETA.name, "champion")
    if lake.exists(predictions(ETA.name)):
        report.predictions = lake.info(predictions(ETA.name)).rows
    report.plot = metric_plot(lake, ETA.name)
