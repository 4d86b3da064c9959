"""Evaluating the real sensors and schedules outside the daemon, the way it does.

The demo walks through days of event time faster than any daemon would tick,
so it evaluates the drift sensor and the retrain schedule itself, through
Dagster's own evaluation, and keeps each sensor's cursor in the instance under
the same selector the daemon of `eventlake ui` (`dg dev`, code location
``eventlake``) reads. Opening the UI afterwards continues from that cursor
instead of acting again on what the demo already handled.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster._core.remote_origin import (
    InProcessCodeLocationOrigin,
    RemoteInstigatorOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.scheduler.instigation import (
    InstigatorState,
    InstigatorStatus,
    InstigatorType,
    SensorInstigatorData,
)
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

__all__ = ["CODE_LOCATION", "schedule_tick", "sensor_tick"]

CODE_LOCATION = "eventlake"  # [tool.dg.project] code_location_name in pyproject.toml
_REPOSITORY = "__repository__"  # what Dagster names the repository of a Definitions


def _origin(name: str) -> RemoteInstigatorOrigin:
    project = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    location = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(
            module_name="orchestration.definitions", working_directory=project, attribute="defs"
        ),
        location_name=CODE_LOCATION,
    )
    return RemoteInstigatorOrigin(RemoteRepositoryOrigin(location, _REPOSITORY), name)


def sensor_cursor(instance: dg.DagsterInstance, name: str) -> str | None:
    """The cursor of sensor ``name`` kept in ``instance`` (None: never ticked)."""
    origin = _origin(name)
    state = instance.get_instigator_state(origin.get_id(), origin.get_selector().get_id())
    data = state.instigator_data if state else None
    return data.cursor if isinstance(data, SensorInstigatorData) else None


def sensor_tick(
    defs: dg.Definitions,
    name: str,
    instance: dg.DagsterInstance,
    resources: Mapping[str, Any],
) -> list[dg.RunRequest]:
    """Evaluate sensor ``name`` once from the cursor ``instance`` keeps; store the new one."""
    sensor = defs.resolve_sensor_def(name)
    origin = _origin(name)
    selector_id = origin.get_selector().get_id()
    state = instance.get_instigator_state(origin.get_id(), selector_id)
    data = state.instigator_data if state else None
    cursor = data.cursor if isinstance(data, SensorInstigatorData) else None
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources)
    result = sensor.evaluate_tick(context)
    new = SensorInstigatorData(
        last_tick_timestamp=dt.datetime.now(dt.UTC).timestamp(),
        min_interval=sensor.minimum_interval_seconds,
        cursor=result.cursor if result.cursor is not None else cursor,
        sensor_type=sensor.sensor_type,
    )
    if state is None:
        instance.add_instigator_state(
            InstigatorState(origin, InstigatorType.SENSOR, InstigatorStatus.DECLARED_IN_CODE, new)
        )
    else:
        instance.update_instigator_state(state.with_data(new))
    return list(result.run_requests or [])


def schedule_tick(
    defs: dg.Definitions,
    name: str,
    instance: dg.DagsterInstance,
    resources: Mapping[str, Any],
    at: dt.datetime,
) -> list[dg.RunRequest]:
    """Evaluate schedule ``name`` as its tick at ``at`` would."""
    schedule = defs.resolve_schedule_def(name)
    context = dg.build_schedule_context(
        instance=instance, scheduled_execution_time=at, resources=resources
    )
    return list(schedule.evaluate_tick(context).run_requests or [])
