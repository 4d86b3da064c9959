"""Batch retraining: a fresh model from a window of lake history.

The newest ``holdout_days`` of labeled rows are held out; the model learns the
``window_days`` before them, ``passes`` times over (the first pass is also
scored progressively), and is then scored on the holdout. The result is a new
``batch`` version whose lineage names exactly those rows.
"""

from __future__ import annotations

import datetime as dt
import logging
import time

from lake import Lake
from training.errors import NothingToLearn
from training.model_registry import ModelRegistry, ModelVersion
from training.rows import (
    count_labeled,
    labeled_rows,
    newest_labeled,
    predict,
    score,
    table_versions,
)
from training.specs import ModelSpec

__all__ = ["holdout_start", "retrain", "training_window"]

log = logging.getLogger(__name__)


def holdout_start(lake: Lake, spec: ModelSpec, holdout_days: float) -> dt.datetime:
    """Where the holdout window begins: ``holdout_days`` before the newest labeled row."""
    newest = newest_labeled(lake, spec)
    if newest is None:
        raise NothingToLearn(
            f"feature set {spec.feature_set.name!r} has no labeled rows yet; ingest events "
            "and update the features first"
        )
    return newest - dt.timedelta(days=holdout_days)


def training_window(
    lake: Lake, spec: ModelSpec, *, window_days: float = 7.0, holdout_days: float = 1.0
) -> tuple[dt.datetime, dt.datetime]:
    """``(since, before)``: the event times a :func:`retrain` learns from, the
    ``window_days`` before the holdout. Raises :class:`NothingToLearn`, saying what to
    change, when no labeled row lies there, so a schedule or sensor can skip a retrain
    that would fail (it reads one count, no rows).

    >>> training_window(lake, eta, window_days=1.5, holdout_days=0.5)  # doctest: +SKIP
    (datetime.datetime(2026, 11, 1, 2, 33, ...), datetime.datetime(2026, 11, 2, 14, 33, ...))
    """
    since, split = _bounds(lake, spec, window_days, holdout_days)
    if not count_labeled(lake, spec, since=since, before=split):
        raise _nothing_before(spec, window_days, split)
    return since, split


def _bounds(
    lake: Lake, spec: ModelSpec, window_days: float, holdout_days: float
) -> tuple[dt.datetime, dt.datetime]:
    split = holdout_start(lake, spec, holdout_days)
    return split - dt.timedelta(days=window_days), split


def _nothing_before(spec: ModelSpec, window_days: float, split: dt.datetime) -> NothingToLearn:
    return NothingToLearn(
        f"no labeled rows of {spec.feature_set.name!r} in the {window_days} days before "
        f"the holdout (from {split:%Y-%m-%d %H:%M}); widen window_days or shrink "
        "holdout_days, or wait for more labels"
    )


def retrain(
    lake: Lake,
    spec: ModelSpec,
    *,
    window_days: float = 7.0,
    holdout_days: float = 1.0,
    passes: int = 1,
    code_version: str = "",
) -> ModelVersion:
    """Train a fresh ``spec`` model on the window before the holdout; register it."""
    t0 = time.monotonic()
    since, split = _bounds(lake, spec, window_days, holdout_days)
    train = labeled_rows(lake, spec, since=since, before=split)  # read once: no count first
    if not len(train):
        raise _nothing_before(spec, window_days, split)
    holdout = labeled_rows(lake, spec, since=split)
    model, metric = spec.make_model(), spec.make_metric()
    for p in range(passes):
        for x, y in zip(train.x, train.y, strict=True):
            if p == 0 and (y_pred := predict(model, metric, x)) is not None and y_pred != {}:
                metric.update(y, y_pred)  # progressive, as River: nothing to score yet, skipped
            model.learn_one(x, y)
    name = type(metric).__name__
    holdout_score = score(model, spec, holdout) if len(holdout) else float("nan")
    registry = ModelRegistry(lake)
    mv = registry.register(
        spec.name,
        "batch",
        model=model,
        metrics={name: float(metric.get()), f"holdout_{name}": holdout_score, "rows": len(train)},
        params={
            "model": repr(model),
            "window_days": window_days,
            "holdout_days": holdout_days,
            "passes": passes,
        },
        lineage={
            "feature_set": spec.feature_set.name,
            "event_time": spec.feature_set.event_time,
            "source": spec.feature_set.source,
            "features_table_version": train.table_version,
            "tables": table_versions(lake, spec),
            "holdout_from": split.isoformat(),
        },
        lineage_offsets=train.offsets(),
        rows=len(train),
        event_time_from=train.event_time[0],
        event_time_to=train.event_time[-1],
        code_version=code_version,
    )
    registry.record_trace(
        [
            {
                "name": spec.name,
                "version": mv.version,
                "kind": "batch",
                "event_time": train.event_time[-1],
                "metric": f"holdout_{name}",
                "value": holdout_score,
                "rows": len(train),
            }
        ]
    )
    log.info(
        "%s v%d: retrained on %d rows x %d passes, %s %.4f, holdout %.4f (%d rows), %.1f s",
        spec.name,
        mv.version,
        len(train),
        passes,
        name,
        metric.get(),
        holdout_score,
        len(holdout),
        time.monotonic() - t0,
    )
    return mv
