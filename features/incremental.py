"""The incremental path: only the events new since the cursor, from state kept in the lake.

Each run reads the source rows past its cursors (the Delta scan skips older
files by their offset statistics) and the state (:mod:`features.state`), and:

1. **Watermark.** ``W = newest event time seen - allowed_lateness``. A row is
   emitted once its event time is at most ``W``: every event that can still
   arrive on time is not earlier than ``W``, so it cannot change the row (only
   strictly earlier events count). Rows after ``W`` wait in the state.
2. **Late events** are events older than the frontier (the ``W`` of the last
   run): they arrived after more than the allowed lateness. Their row is
   emitted at once from the state as it stands, with ``_late`` set; their
   contribution counts for every row emitted after them; rows already emitted
   that should have counted them keep their values until a batch backfill of
   their day (:func:`features.compute.compute_features`) restores the exact
   ones. :func:`late_days` lists the days to backfill; the Dagster check on
   the features asset compares a day with its batch recomputation.
3. **State.** Events before ``W`` fold into per-key partial aggregates; the
   events the next runs need (after ``W``, and within the longest window
   before it) stay raw. The state's size follows keys and the lateness and
   window spans, never the history.
4. **Labels** (a :class:`~features.definition.Label` from another table) are
   read past their own cursor; a label for a row already emitted updates only
   that row, in its day's partition (the state keeps the day of each row still
   waiting); one for a row not emitted yet waits in the state.

Writes: feature rows are appended, minus any with the same Kafka coordinates
already there (so a run retried after a crash adds nothing twice); labels are
merged into their rows (idempotent); the state and all cursors are then
rewritten in one commit. A crash before that commit replays the run from the
old state.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import polars as pl
from deltalake import write_deltalake

from features.aggregations import partials
from features.compute import (
    LATE,
    feature_rows,
    first_labels,
    label_dtype,
    source_events,
)
from features.definition import FeatureSet, Label
from features.state import EMITTED as _EMITTED
from features.state import (
    FeatureState,
    consumed,
    event_columns,
    load_state,
    past_cursors,
    save_state,
)
from lake import Lake, TableNotInLake
from lake.names import COORDINATES, DATE, KAFKA_OFFSET, KAFKA_PARTITION, KAFKA_TOPIC
from lake.names import LABEL_COORDINATES as LABEL_COORDS
from lake.names import features as features_table

__all__ = ["FeatureUpdate", "late_days", "rebuild_state", "update_features"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeatureUpdate:
    """What one incremental run did."""

    new_rows: int  # feature rows emitted (late ones included)
    relabeled: int  # rows emitted earlier whose label arrived
    version: int | None  # features table version written, None if nothing to do
    late: int = 0  # rows emitted for late events
    pending: int = 0  # events waiting for the watermark
    keys: int = 0  # keys with partial aggregates in the state


def _advance(state: FeatureState, role: str, rows: pl.DataFrame) -> None:
    if rows.is_empty():
        return
    last = rows.group_by(KAFKA_TOPIC, KAFKA_PARTITION).agg(pl.col(KAFKA_OFFSET).max())
    for topic, partition, offset in last.iter_rows():
        state.cursors[(role, topic, int(partition))] = int(offset)


def _fold(fs: FeatureSet, base: dict[str, pl.DataFrame], events: pl.DataFrame) -> dict:
    """``base`` with the unwindowed partials of ``events`` folded in."""
    out = dict(base)
    if events.is_empty():
        return out
    groups: dict[str, dict] = {}
    for name, agg in fs.aggregations.items():
        if agg.window is None:
            groups.setdefault(agg.by, {})[name] = agg
    for by, aggs in groups.items():
        old = base.get(by)
        old_lazy = old.lazy() if old is not None and old.height else None
        out[by] = partials(aggs, events.lazy(), fs.event_time, old_lazy).collect()
    return out


def update_features(lake: Lake, fs: FeatureSet, *, drain: bool = False) -> FeatureUpdate:
    """Emit the feature rows of the events new since the last run (and of earlier ones
    the watermark has now passed); apply labels that arrived; move the state.

    With ``drain``, emit every waiting row now (the end of a stream, a test): events
    arriving later with an earlier time are then late.
    """
    fs.check_incremental()
    t = fs.event_time
    state = load_state(lake, fs)
    new = past_cursors(source_events(lake, fs), state, "source").collect()
    cols = event_columns(fs)
    buffer = state.events if state.events.height else _empty_events(new, cols)
    if _EMITTED not in buffer.columns:
        buffer = buffer.with_columns(pl.lit(False).alias(_EMITTED))
    frontier = state.frontier
    late = new.filter(pl.col(t) < frontier) if frontier is not None else new.clear()
    ontime = new.filter(pl.col(t) >= frontier) if frontier is not None else new
    base = {by: b for by, b in state.base.items() if b.height}
    # 2. Late rows, from the state as it stands.
    window_events = pl.concat([buffer.drop(_EMITTED), new], how="diagonal_relaxed")
    after = buffer.filter(pl.col(t) >= frontier) if frontier is not None else buffer
    unwindowed = pl.concat([after.drop(_EMITTED), ontime], how="diagonal_relaxed")
    lazy_base = {by: b.lazy() for by, b in base.items()}
    typed = label_dtype(lake, fs)
    late_rows = (
        feature_rows(
            fs, late.lazy(), unwindowed.lazy(), lazy_base, window_events.lazy(), label_type=typed
        )
        .with_columns(pl.lit(True).alias(LATE))
        .collect()
        if late.height
        else None
    )
    base = _fold(fs, base, late)
    # 1. Watermark: emit what it has passed.
    arrived: dt.datetime | None = new[t].max() if new.height else None  # type: ignore[assignment]
    times = [x for x in (state.newest, arrived) if x is not None]
    newest = max(times) if times else None
    if newest is None:
        return FeatureUpdate(0, 0, None)
    watermark = newest if drain else newest - fs.allowed_lateness
    waiting = pl.concat(
        [after.filter(~pl.col(_EMITTED)).drop(_EMITTED), ontime], how="diagonal_relaxed"
    )
    emit = waiting.filter(pl.col(t) <= watermark)
    lazy_base = {by: b.lazy() for by, b in base.items()}
    rows = feature_rows(
        fs, emit.lazy(), unwindowed.lazy(), lazy_base, window_events.lazy(), label_type=typed
    )
    emitted = rows.collect()
    if late_rows is not None:
        emitted = pl.concat([late_rows, emitted], how="diagonal_relaxed")
    # 3. State: fold what is before the new frontier, keep what later runs need.
    new_frontier = watermark if frontier is None else max(frontier, watermark)
    if drain:
        new_frontier = newest + dt.timedelta(microseconds=1)
    state.base = _fold(fs, base, unwindowed.filter(pl.col(t) < new_frontier))
    done = set(zip(*(emit[c].to_list() for c in COORDINATES), strict=True))
    kept = pl.concat(
        [buffer, new.with_columns(pl.lit(False).alias(_EMITTED))], how="diagonal_relaxed"
    ).filter(pl.col(t) >= new_frontier - fs.horizon)
    if done:
        mark = pl.DataFrame(list(done), schema=kept.select(COORDINATES).schema, orient="row")
        kept = kept.join(mark.with_columns(pl.lit(True).alias("_now")), on=list(COORDINATES),
                         how="left")  # fmt: skip
        kept = kept.with_columns((pl.col(_EMITTED) | pl.col("_now").fill_null(False))
                                 .alias(_EMITTED)).drop("_now")  # fmt: skip
    state.events = kept.unique(subset=list(COORDINATES), keep="first").select([*cols, _EMITTED])
    state.frontier, state.newest = new_frontier, newest
    _advance(state, "source", new)
    # 4. Labels.
    relabels = pl.DataFrame()
    label_cursor = dict(state.cursors)
    if isinstance(fs.label, Label):
        emitted, relabels = _apply_labels(lake, fs, state, emitted)
    if new.is_empty() and emitted.is_empty() and state.cursors == label_cursor and not drain:
        return FeatureUpdate(0, 0, None, keys=state.keys())  # nothing arrived: no commit
    version = _write(lake, fs, emitted, relabels)
    save_state(lake, fs, state)
    update = FeatureUpdate(
        emitted.height,
        relabels.height,
        version,
        late=late.height,
        pending=int((~state.events[_EMITTED]).sum()) if state.events.height else 0,
        keys=state.keys(),
    )
    log.info("%s: %s", features_table(fs.name), update)
    return update


def _empty_events(like: pl.DataFrame, cols: list[str]) -> pl.DataFrame:
    return like.select([c for c in cols if c in like.columns]).clear()


def _apply_labels(
    lake: Lake, fs: FeatureSet, state: FeatureState, emitted: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Labels for the rows emitted now, and label updates for rows emitted before."""
    label = fs.label
    assert isinstance(label, Label)
    try:
        events = past_cursors(lake.scan(label.table), state, "label").collect()
    except TableNotInLake:
        events = pl.DataFrame()
    key_type = emitted.schema.get(fs.key) if emitted.height else None
    found = [state.labels] if state.labels.height else []
    if events.height:
        _advance(state, "label", events)
        new = first_labels(events.lazy(), label).collect().rename({"_join_key": fs.key})
        found.append(new)
    if not found:
        state.unlabeled = _unlabeled(state.unlabeled, emitted, fs)
        return emitted, pl.DataFrame()
    labels = pl.concat(found, how="diagonal_relaxed").unique(fs.key, keep="first")
    if key_type is not None:
        labels = labels.with_columns(pl.col(fs.key).cast(key_type))
    # Rows emitted now take their label; rows waiting in the index get an update.
    cols = ["label", *LABEL_COORDS]
    if emitted.height:
        emitted = emitted.drop(cols).join(labels, on=fs.key, how="left").select(emitted.columns)
    index = state.unlabeled
    relabels = (
        index.join(labels.with_columns(pl.col(fs.key).cast(index.schema[fs.key])), on=fs.key)
        if index.height
        else pl.DataFrame()
    )
    used = set(relabels[fs.key].to_list()) if relabels.height else set()
    if emitted.height:
        used |= set(emitted.filter(pl.col("label").is_not_null())[fs.key].to_list())
    state.labels = labels.filter(~pl.col(fs.key).is_in(list(used)))
    if index.height:
        index = index.filter(~pl.col(fs.key).is_in(list(used)))
    state.unlabeled = _unlabeled(index, emitted, fs)
    return emitted, relabels


def _unlabeled(index: pl.DataFrame, emitted: pl.DataFrame, fs: FeatureSet) -> pl.DataFrame:
    waiting = emitted.filter(pl.col("label").is_null()).select(fs.key, DATE)
    if not index.height:
        return waiting
    return pl.concat([index, waiting], how="diagonal_relaxed")


def _write(lake: Lake, fs: FeatureSet, rows: pl.DataFrame, relabels: pl.DataFrame) -> int | None:
    """Append ``rows`` not already there (by Kafka coordinates); merge ``relabels``."""
    name = features_table(fs.name)
    version = None
    if rows.height:
        if lake.exists(name):
            table = lake.table(name)
            have = (
                lake.scan(name)
                .filter(
                    pl.col(KAFKA_OFFSET).is_between(
                        rows[KAFKA_OFFSET].min(), rows[KAFKA_OFFSET].max()
                    )
                )
                .select(COORDINATES)
                .collect()
            )
            fresh = rows.join(have, on=list(COORDINATES), how="anti") if have.height else rows
            if fresh.height:
                write_deltalake(
                    table,
                    fresh.to_arrow(),
                    mode="append",
                    partition_by=[DATE],
                    schema_mode="merge",
                    storage_options=lake.storage_options,
                )
            version = table.version()
        else:
            write_deltalake(
                lake.uri(name),
                rows.to_arrow(),
                partition_by=[DATE],
                storage_options=lake.storage_options,
            )
            version = lake.table(name).version()
    if relabels.height:
        table = lake.table(name)
        days = ", ".join(f"'{d}'" for d in sorted(set(relabels[DATE].to_list())))
        key = fs.key
        (
            table.merge(
                relabels.to_arrow(),
                f"t.{DATE} IN ({days}) AND t.{DATE} = s.{DATE} AND t.{key} = s.{key}",
                source_alias="s",
                target_alias="t",
            )
            .when_matched_update({c: f"s.{c}" for c in ["label", *LABEL_COORDS]})
            .execute()
        )
        version = table.version()
    return version


def late_days(lake: Lake, fs: FeatureSet) -> list[dt.date]:
    """The days to backfill (:func:`features.compute.compute_features`) after late
    events: from the first day with a row flagged late to the last day with rows
    (a late event changes the rows after it, whatever their day)."""
    name = features_table(fs.name)
    if not lake.exists(name):
        return []
    first = lake.scan(name).filter(pl.col(LATE)).select(pl.col(DATE).min()).collect().item()
    if first is None:
        return []
    days = lake.scan(name).filter(pl.col(DATE) >= first).select(DATE).unique().collect()
    return sorted(days[DATE].to_list())


def rebuild_state(lake: Lake, fs: FeatureSet) -> FeatureState:
    """Recompute the state's partial aggregates and kept events from the source as it
    is now (after an erasure, say), keeping the cursors and the frontier."""
    state = load_state(lake, fs)
    if state.frontier is None:
        return state
    t = fs.event_time
    seen = source_events(lake, fs).filter(consumed(state, "source")).collect()
    state.base = _fold(fs, {}, seen.filter(pl.col(t) < state.frontier))
    if state.events.height:
        keep = state.events.select([*COORDINATES, _EMITTED])
        state.events = seen.join(keep, on=list(COORDINATES), how="inner").select(
            state.events.columns
        )
    if isinstance(fs.label, Label) and state.unlabeled.height:
        name = features_table(fs.name)
        if lake.exists(name):
            rows = lake.scan(name).select(fs.key).collect()
            state.unlabeled = state.unlabeled.join(rows, on=fs.key, how="semi")
    save_state(lake, fs, state)
    return state
