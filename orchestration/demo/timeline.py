"""The demo's history on a simulated clock: ingest, scoring and learning running
together, and the real sensors and schedules deciding on retraining and promotion.

Event time advances in steps (30 minutes by default). In each step the app
publishes the step's events; the ingester and the scorer, started once and running
all along as in a deployment, take them in; once the lake holds every event and
every order is scored, the online model learns the labels that have arrived (the
``learn_<model>`` job, as the eager automation would run it) and the clock ticks
Dagster's own evaluation of the drift sensor, the shadow sensor and, when the clock
passes 03:00, the retrain schedule (cursors in the instance), launching the runs
they ask for. Each finished day gets its silver and feature partitions and the
measurement of the day before (whose labels have all arrived).

So every order is scored by the version serving at the end of the step before it:
the newest online state at most one step old, learned from the labels that had
arrived by then (the scorer re-reads aliases on every batch). Orders placed before
the first model existed are scored once it does. The clock stands in for the
daemon's wall clock, which would take three days to walk three days of event time.
"""

from __future__ import annotations

import datetime as dt
import functools
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import dagster as dg

from ingest import Ingester, IngestOptions
from lake import Lake, TableNotInLake
from lake.names import predictions, silver, value_subject
from lake.offsets import silver_app_id, txn_versions
from orchestration.defs.automation import (
    DAILY_TABLES_JOB,
    DEAD_LETTERS_JOB,
    MAINTENANCE_SCHEDULE,
    drift_sensor_name,
    judge_job_name,
    learn_job_name,
    live_metrics_job_name,
    retrain_job_name,
    retrain_schedule_name,
    shadow_sensor_name,
)
from orchestration.defs.jobs import maintenance_job
from orchestration.defs.reports import bronze_reporter
from orchestration.defs.ticks import schedule_tick, sensor_tick
from orchestration.demo.simulation import Event, EventPublisher
from orchestration.errors import DemoError
from orchestration.serving import run_scoring
from training import ModelRegistry, ModelSpec, prediction_app_id

__all__ = ["STEP", "Timeline"]

MAINTENANCE_JOB = maintenance_job.name

STEP = dt.timedelta(minutes=30)
RETRAIN_AT = dt.time(3)  # the retrain schedule's cron, 0 3 * * *
MAINTENANCE_AT = dt.time(2, 30)  # nightly_maintenance's cron, 30 2 * * *


def _at(now: dt.datetime, when: dt.time) -> dt.datetime:
    return dt.datetime.combine(now.date(), when, tzinfo=dt.UTC)


def _due(start: dt.datetime, end: dt.datetime, when: dt.time) -> bool:
    """Whether a daily schedule at ``when`` ticks within the step ``[start, end)``."""
    return start < _at(start, when) <= end


class Timeline:
    """Walks ``events`` through the deployment step by step; see the module doc.

    ``run`` is a callable that runs a named Dagster job (for a partition), as the demo's
    pipeline does; ``defs``, ``instance`` and ``resources`` evaluate the sensors.

    >>> Timeline(...).play(events)  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        spec: ModelSpec,
        topics: tuple[str, str],  # (the scored topic, the label topic)
        bootstrap_servers: str,
        lake: Lake,
        app: EventPublisher,
        instance: dg.DagsterInstance,
        defs: dg.Definitions,
        resources: dict[str, Any],
        run: Callable[..., None],
        echo: Callable[[str], None],
        step: dt.timedelta = STEP,
        wait_s: float = 60.0,
    ) -> None:
        self.spec, self.topics, self.bs, self.lake = spec, topics, bootstrap_servers, lake
        self.app, self.instance, self.defs, self.resources = app, instance, defs, resources
        self.run, self.echo, self.step, self.wait_s = run, echo, step, wait_s
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.errors: list[BaseException] = []
        self.retrains = 0
        self._tables: dict[str, Any] = {}  # the fenced tables the clock polls, kept open

    # -- the deployment's long-running parts -----------------------------------------

    def _service(self, name: str, target: Callable[[], Any]) -> None:
        def main() -> None:
            try:
                target()
            except BaseException as e:  # reported by the clock, which then stops
                self.errors.append(e)

        thread = threading.Thread(target=main, name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def _start_ingest(self) -> None:
        options = IngestOptions(
            bootstrap_servers=self.bs,
            topics=self.topics,
            lake=self.lake,
            decode_avro=True,
            batch_max_latency_s=0.05,
        )
        ingester = Ingester(options, on_commit=bronze_reporter(self.instance))
        self._service("ingest", lambda: ingester.run(stop=self.stop))

    def _start_scoring(self) -> None:
        self._service(
            "score",
            lambda: run_scoring(
                bootstrap_servers=self.bs, lake=self.lake, specs=[self.spec],
                topic=self.topics[0], stop=self.stop, from_beginning=True, reload_s=0.0,
            ),
        )  # fmt: skip

    # -- the clock -----------------------------------------------------------------

    def play(self, events: list[Event]) -> None:
        """Walk ``events`` (in event-time order) through, step by step."""
        self._start_ingest()
        scoring = False
        try:
            day_started, days = time.monotonic(), []
            for now, end, due in _steps(events, self.step):
                for e in due:
                    self.app.send(e)
                self.app.flush()
                self._wait(scoring)
                self.run(learn_job_name(self.spec.name), reason="clock")
                if not scoring and ModelRegistry(self.lake).names():
                    self._start_scoring()  # the first version exists: serving starts
                    scoring = True
                    self._wait(scoring)
                self._tick(now, end)
                if end.date() != now.date() or end > events[-1].at:  # the day is over
                    days.append(now.date())
                    self._day_done(days, time.monotonic() - day_started)
                    day_started = time.monotonic()
            self.run(live_metrics_job_name(self.spec.name), partition=str(days[-1]))
        finally:
            self.stop.set()
            for t in self.threads:
                t.join(30)
        self._raise_errors()

    def _tick(self, now: dt.datetime, end: dt.datetime) -> None:
        """Dagster evaluates the sensors (and the schedule, if its time passed)."""
        name = self.spec.name
        for request in sensor_tick(self.defs, drift_sensor_name(name), self.instance,
                                   self.resources):  # fmt: skip
            self._retrain(request, "drift")
        if _due(now, end, MAINTENANCE_AT):  # compaction keeps each step's reads small
            for request in self._schedule(MAINTENANCE_SCHEDULE, _at(now, MAINTENANCE_AT)):
                self.run(MAINTENANCE_JOB, reason="schedule", tags=request.tags)
        if _due(now, end, RETRAIN_AT):
            for request in self._schedule(retrain_schedule_name(name), _at(now, RETRAIN_AT)):
                self._retrain(request, "schedule")
        for request in sensor_tick(self.defs, shadow_sensor_name(name), self.instance,
                                   self.resources):  # fmt: skip
            self.run(judge_job_name(name), reason="live traffic", tags=request.tags)

    def _schedule(self, name: str, at: dt.datetime) -> list[dg.RunRequest]:
        return schedule_tick(self.defs, name, self.instance, self.resources, at)

    def _retrain(self, request: dg.RunRequest, why: str) -> None:
        # The schedule and the sensor skip, saying why, while there is nothing to learn.
        self.run(retrain_job_name(self.spec.name), reason=why, tags=request.tags)
        self.retrains += 1

    def _day_done(self, days: list[dt.date], seconds: float) -> None:
        """The day's partitions, and the measurement of the day before (its labels are in)."""
        day = days[-1]
        self.run(DAILY_TABLES_JOB, partition=str(day))
        self.run(DEAD_LETTERS_JOB)
        if len(days) > 1:
            self.run(live_metrics_job_name(self.spec.name), partition=str(days[-2]))
        registry = ModelRegistry(self.lake)
        online = registry.latest(self.spec.name, kind="online")
        metric = type(self.spec.make_metric()).__name__
        score = f"{online.metrics.get(metric, float('nan')):.2f}" if online else "-"
        shadow = registry.launch(self.spec.name)
        self.echo(
            f"{day}: online v{online.version if online else '-'} ({metric} {score}); "
            f"champion v{registry.alias(self.spec.name, 'champion')}"
            f"{f', shadow v{shadow.challenger}' if shadow.mode == 'shadow' else ''}; "
            f"{self.retrains} batch retrains so far ({seconds:.1f} s)"
        )

    # -- waiting for the lake --------------------------------------------------------

    def _wait(self, scoring: bool) -> None:
        """Until silver holds every event sent and, once scoring runs, every order is
        scored; raises if that takes over ``wait_s``."""
        deadline = time.monotonic() + self.wait_s
        while True:
            self._raise_errors()
            behind = self._behind(scoring)
            if not behind:
                return
            if time.monotonic() > deadline:
                raise DemoError(f"the lake did not catch up within {self.wait_s:g} s: {behind}")
            time.sleep(0.02)

    def _behind(self, scoring: bool) -> str:
        fences: list[tuple[str, str, Callable[[int], str]]] = [
            (silver(value_subject(t)), t, functools.partial(silver_app_id, t)) for t in self.topics
        ]
        if scoring:
            scored = self.topics[0]
            app_id = functools.partial(prediction_app_id, self.spec.name, "champion", scored)
            fences.append((predictions(self.spec.name), scored, app_id))
        for table_name, topic, fence in fences:
            want = self.app.produced.get(topic, {})
            if not want:
                continue
            table = self._tables.get(table_name)
            try:
                if table is None:
                    table = self._tables[table_name] = self.lake.table(table_name)
                else:
                    table.update_incremental()  # only the log entries since the last poll
            except TableNotInLake:
                return f"{table_name} does not exist yet"
            have = txn_versions(table, fence, want)
            late = {p: (have[p], o) for p, o in want.items() if (have[p] or -1) < o}
            if late:
                return f"{table_name} at {late} (have, want)"
        return ""

    def _raise_errors(self) -> None:
        if self.errors:
            raise DemoError(f"a demo service failed: {self.errors[0]!r}") from self.errors[0]


def _steps(
    events: list[Event], step: dt.timedelta
) -> Iterator[tuple[dt.datetime, dt.datetime, list[Event]]]:
    """(start, end, events) of consecutive steps from the first event's hour; a step
    ends early at midnight, so that every day ends with a step.

    >>> t = dt.datetime(2026, 11, 1, 22, 10, tzinfo=dt.UTC)
    >>> es = [Event(t, "o", 1, {}), Event(t + dt.timedelta(hours=3), "o", 1, {})]
    >>> [(a.strftime("%d %H:%M"), b.strftime("%d %H:%M"), len(e))
    ...  for a, b, e in _steps(es, dt.timedelta(minutes=90))]
    [('01 22:00', '01 23:30', 1), ('01 23:30', '02 00:00', 0), ('02 00:00', '02 01:30', 1)]
    """
    if not events:
        return
    t = events[0].at.replace(minute=0, second=0, microsecond=0)
    i = 0
    while i < len(events):
        midnight = dt.datetime.combine(t.date() + dt.timedelta(days=1), dt.time(), t.tzinfo)
        end = min(t + step, midnight)
        due = []
        while i < len(events) and events[i].at < end:
            due.append(events[i])
            i += 1
        yield t, end, due
        t = end
