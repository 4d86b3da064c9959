"""The online path: feature values for new events, from the incremental path's state.

:class:`OnlineFeatures` loads ``feature_state/<name>`` (partials per key and the
recent events), catches up with the source rows ingested since the state was
written, and then answers for new events in memory: each event's features
count every event of its key strictly before it (those in the state, those
observed since, and earlier events of the same call), exactly as the batch
path would once they are all in the lake. Observed events older than the
newest minus the allowed lateness fold into the partials, and raw events
older than the longest window before that are dropped, so memory follows the
keys, not the history. An event older than that frontier is late: its values
come from the state as it stands and carry ``_late``.

>>> import datetime as dt, polars as pl
>>> from features.definition import FeatureSet, prior_count
>>> fs = FeatureSet("f", "silver.s", key="id", event_time="t",
...                 features={"n": prior_count("u")})
>>> online = OnlineFeatures(fs)
>>> ev = pl.DataFrame({"id": [1, 2], "t": [dt.datetime(2026, 1, 1)] * 2, "u": [7, 7],
...                    "_kafka_topic": ["s", "s"], "_kafka_partition": [0, 0],
...                    "_kafka_offset": [0, 1], "_date": [dt.date(2026, 1, 1)] * 2})
>>> online.features(ev)["n"].to_list()   # same instant: they do not see each other
[0, 0]
>>> online.observe(ev)
>>> online.features(ev.with_columns(pl.col("t") + dt.timedelta(minutes=1)))["n"].to_list()
[2, 2]
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from features.compute import LATE, feature_rows, source_events
from features.definition import FeatureSet
from features.incremental import _EMITTED, _fold, _past_cursors
from features.state import FeatureState, event_columns, load_state
from lake import Lake
from lake.names import COORDINATES

__all__ = ["OnlineFeatures"]

_FOLD_EVERY = 10_000  # observed events between folds into the partials


class OnlineFeatures:
    """Online feature values for ``fs``, from ``state`` (empty by default)."""

    def __init__(self, fs: FeatureSet, state: FeatureState | None = None) -> None:
        fs.check_incremental()
        self.fs = fs
        state = state or FeatureState()
        self._base = {by: b for by, b in state.base.items() if b.height}
        self._frontier = state.frontier
        self._newest = state.newest
        cols = event_columns(fs)
        events = state.events
        self._events = events.select([c for c in cols if c in events.columns]) if events.height \
            else pl.DataFrame()  # fmt: skip
        self._observed = 0

    @classmethod
    def load(cls, lake: Lake, fs: FeatureSet) -> OnlineFeatures:
        """The state in the lake, caught up with the source rows ingested since."""
        state = load_state(lake, fs)
        online = cls(fs, state)
        recent = _past_cursors(source_events(lake, fs), state, "source").collect()
        if recent.height:
            online.observe(recent)
        return online

    @property
    def keys(self) -> int:
        """Keys with partial aggregates in memory."""
        return sum(b.height for b in self._base.values())

    @property
    def events_kept(self) -> int:
        """Raw events in memory (within the lateness and the longest window)."""
        return self._events.height

    def features(self, events: pl.DataFrame) -> pl.DataFrame:
        """Feature rows (no label) for ``events``, source-shaped rows not observed yet."""
        fs, t = self.fs, self.fs.event_time
        events = _conform(events, fs)
        kept = _conform(self._events, fs, like=events) if self._events.height else events.clear()
        kept = kept.join(events.select(COORDINATES), on=list(COORDINATES), how="anti")
        recent = kept.filter(pl.col(t) >= self._frontier) if self._frontier else kept
        both = pl.concat([recent, events], how="diagonal_relaxed")
        window = pl.concat([kept, events], how="diagonal_relaxed")
        base = {by: b.lazy() for by, b in self._base.items()}
        rows = feature_rows(fs, events.lazy(), both.lazy(), base, window.lazy()).collect()
        if self._frontier is not None:
            rows = rows.with_columns((pl.col(t) < self._frontier).alias(LATE))
        return rows

    def observe(self, events: pl.DataFrame) -> None:
        """Add ``events`` to the state (after scoring them)."""
        if events.is_empty():
            return
        fs, t = self.fs, self.fs.event_time
        events = _conform(events, fs)
        if self._frontier is not None:
            late = events.filter(pl.col(t) < self._frontier)
            self._base = _fold(fs, self._base, late)
        kept = _conform(self._events, fs, like=events) if self._events.height else events.clear()
        self._events = pl.concat([kept, events], how="diagonal_relaxed").unique(
            subset=list(COORDINATES), keep="first", maintain_order=True
        )
        newest: dt.datetime = events[t].max()  # type: ignore[assignment]
        self._newest = newest if self._newest is None else max(self._newest, newest)
        self._observed += events.height
        if self._observed >= _FOLD_EVERY:
            self._fold()

    def _fold(self) -> None:
        """Move events before ``newest - allowed lateness`` into the partials."""
        fs, t = self.fs, self.fs.event_time
        assert self._newest is not None
        frontier: dt.datetime = self._newest - fs.allowed_lateness
        if self._frontier is not None and frontier <= self._frontier:
            return
        start = self._frontier
        moving = self._events.filter(pl.col(t) < frontier)
        if start is not None:
            moving = moving.filter(pl.col(t) >= start)
        self._base = _fold(fs, self._base, moving)
        self._events = self._events.filter(pl.col(t) >= frontier - fs.horizon)
        self._frontier = frontier
        self._observed = 0


def _conform(frame: pl.DataFrame, fs: FeatureSet, like: pl.DataFrame | None = None) -> pl.DataFrame:
    """``frame`` with the event columns of ``fs`` (absent ones null), typed as ``like``."""
    cols = event_columns(fs)
    out = (
        frame.drop(_EMITTED, strict=False)
        .with_columns(pl.lit(None).alias(c) for c in cols if c not in frame.columns)
        .select(cols)
    )
    if like is not None:
        out = out.cast({c: like.schema[c] for c in cols if like.schema[c] != pl.Null})
    return out
