"""Online learning: each run learns from the labeled rows added since the last one.

A run continues the newest online version of the model (its River model, its
running metric and drift detector), takes the feature rows whose label arrived
after that version's cursor, in event-time order, and for each row predicts
first, updates the metric (progressive validation, as
``river.evaluate.progressive_val_score``), feeds the error to the drift
detector (detections where the error went up are recorded), then learns. It
saves a new version with the metric, the range it consumed, the detections,
and a trace of the metric over event time.

Everything is deterministic given the rows and the cursors, so replaying the
recorded increments from scratch gives identical parameters
(:func:`replay_online`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from lake import Lake
from training.model_registry import Cursor, ModelRegistry, ModelVersion, advance, merge_ranges
from training.rows import Rows, labeled_rows, table_versions
from training.specs import ModelSpec

__all__ = ["OnlineRun", "learn_online", "replay_online"]

log = logging.getLogger(__name__)

_TRACE_POINTS = 200  # metric points per run kept for plots


@dataclass
class OnlineRun:
    """What one online run did."""

    version: ModelVersion | None  # None: no new labeled rows
    rows: int = 0
    drifts: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


def learn_online(
    lake: Lake,
    spec: ModelSpec,
    *,
    until: Cursor | None = None,
    name: str | None = None,
    code_version: str = "",
    fresh: bool = False,
) -> OnlineRun:
    """Learn ``spec`` from the labeled rows since its last online version.

    ``until`` stops at a label cursor (used by replays); ``name`` registers under
    another model name (default ``spec.name``). ``fresh`` starts the online line
    again from an untrained model over every labeled row (after an erasure: the
    previous versions learned from records that are gone); later runs continue
    from the fresh version.
    """
    t0 = time.monotonic()
    name = name or spec.name
    registry = ModelRegistry(lake)
    prev = None if fresh else registry.latest(name, kind="online")
    rows = labeled_rows(lake, spec, after=prev.cursor if prev else None, until=until)
    if not len(rows):
        return OnlineRun(None, seconds=time.monotonic() - t0)
    if prev is None:
        model, metric = spec.make_model(), spec.make_metric()
        state = {"detector": spec.make_detector(), "rows": 0, "err_sum": 0.0, "err_n": 0}
    else:
        model, metric, state = prev.model, prev.state["metric"], prev.state
    version = registry.next_version(name)  # the version this run will save
    drifts, trace = _learn(spec, name, version, model, metric, state, rows)
    state["rows"] += len(rows)
    total = state["rows"]
    state["metric"] = metric
    mv = registry.register(
        name,
        "online",
        model=model,
        state=state,
        metrics={type(metric).__name__: float(metric.get()), "rows": total},
        params={"model": repr(model), "detector": repr(state["detector"])},
        lineage={
            "feature_set": spec.feature_set.name,
            "event_time": spec.feature_set.event_time,
            "source": spec.feature_set.source,
            "features_table_version": rows.table_version,
            "tables": table_versions(lake, spec),
            "rows_this_version": len(rows),
        },
        lineage_offsets=merge_ranges(prev.lineage_offsets if prev else {}, rows.offsets()),
        cursor=advance(prev.cursor if prev else {}, rows.label_cursor()),
        rows=len(rows),
        event_time_from=rows.event_time[0],
        event_time_to=rows.event_time[-1],
        parent_version=prev.version if prev else None,
        code_version=code_version,
    )
    assert mv.version == version, "another process registered a version meanwhile"
    registry.record_drift(drifts)
    registry.record_trace(trace)
    run = OnlineRun(mv, len(rows), drifts, time.monotonic() - t0)
    log.info(
        "%s v%d: learned %d rows online (%s %.4f), %d drift detections, %.1f s",
        name,
        mv.version,
        len(rows),
        type(metric).__name__,
        metric.get(),
        len(drifts),
        run.seconds,
    )
    return run


def _learn(
    spec: ModelSpec,
    name: str,
    version: int,
    model: Any,
    metric: Any,
    state: dict[str, Any],
    rows: Rows,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Predict, score, watch, learn: row by row. Returns drift detections and a trace.

    A detection counts when the detector's new estimate of the error is above
    the mean error since the last detection: a detector also fires while a
    young model improves, and that is no reason to retrain.
    """
    detector = state["detector"]
    drifts: list[dict[str, Any]] = []
    trace: list[dict[str, Any]] = []
    every = max(1, len(rows) // _TRACE_POINTS)
    metric_name = type(metric).__name__
    labels = getattr(metric, "requires_labels", True)
    error = spec.error
    predict_one, learn_one, update = model.predict_one, model.learn_one, metric.update
    watch = detector.update
    err_sum, err_n, seen = state["err_sum"], state["err_n"], state["rows"]
    last = len(rows) - 1
    times = rows.event_time
    for i, (x, y) in enumerate(zip(rows.x, rows.y, strict=True)):
        y_pred = predict_one(x) if labels else model.predict_proba_one(x)
        if y_pred is not None and y_pred != {}:  # as progressive_val_score: a model that
            update(y, y_pred)  # cannot predict yet (an empty tree) is not scored
        label = y_pred if labels else predict_one(x)
        err = error(y, label)
        watch(err)
        err_sum += err
        err_n += 1
        if detector.drift_detected:
            estimate = float(getattr(detector, "estimation", err))
            if estimate > err_sum / err_n:
                drifts.append(
                    {
                        "name": name,
                        "version": version,
                        "event_time": times[i],
                        "detector": type(detector).__name__,
                        "statistic": estimate,
                        "rows_seen": seen + i + 1,
                    }
                )
            err_sum, err_n = 0.0, 0
        learn_one(x, y)
        if i % every == 0 or i == last:
            trace.append(
                {
                    "name": name,
                    "version": version,
                    "kind": "online",
                    "event_time": times[i],
                    "metric": metric_name,
                    "value": float(metric.get()),
                    "rows": seen + i + 1,
                }
            )
    state["err_sum"], state["err_n"] = err_sum, err_n
    return drifts, trace


def replay_online(
    lake: Lake, spec: ModelSpec, *, name: str, upto_version: int | None = None
) -> ModelVersion | None:
    """Relearn ``spec``'s online versions from scratch under ``name``, increment by
    increment (each version's recorded cursor), up to ``upto_version``.

    The result's model has the same parameters as the original version's.
    """
    registry = ModelRegistry(lake)
    history = registry.versions(spec.name).filter(kind="online")
    last = None
    for v in history["version"].to_list():
        if upto_version is not None and v > upto_version:
            break
        cursor = registry.load(spec.name, version=v).cursor
        last = learn_online(lake, spec, until=cursor, name=name).version
    return last
