"""Per-key aggregation state in memory, for answering a few events in microseconds.

The online path's engine: the same semantics as :mod:`features.aggregations`
(which evaluates frames with Polars and is the reference), on Python dicts, so
that looking up the features of a handful of new events costs what those
events cost, not a query plan. Per aggregation and key it keeps the partial
aggregate of events older than the frontier, and the raw events since the
frontier minus the longest window. The property test of the feature paths
checks it against the batch path.

It also keeps what makes observing idempotent and folding possible: the last
offset observed per topic-partition (:meth:`KeyedState.claim`), the frontier
and the newest event time. :class:`features.redis_state.RedisKeyedState` keeps
the same things in Redis, with the same methods, for several processes.
"""

from __future__ import annotations

import datetime as dt
from bisect import bisect_left, insort
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import polars as pl

from features.aggregations import Aggregation, partial_columns
from lake.names import KAFKA_OFFSET, KAFKA_PARTITION

__all__ = [
    "Event",
    "KeyedState",
    "Partial",
    "event_order",
    "fold_events",
    "partial_value",
    "partials_of",
    "value_at",
]

Event = tuple[dt.datetime, int, int, Any]  # event time, partition, offset, value


def _time(e: Event) -> dt.datetime:
    return e[0]


def event_order(e: Event) -> tuple[dt.datetime, int, int]:
    """How events are kept sorted: event time, then Kafka partition and offset."""
    return e[0], e[1], e[2]


@dataclass(slots=True)
class Partial:
    """What older events add up to, for one aggregation and key."""

    n: int = 0  # events (count) or non-null values (mean)
    total: float = 0.0
    low: Any = None
    high: Any = None
    last: Any = None
    last_at: tuple[dt.datetime, int, int] | None = None
    values: set[Any] | None = None  # distinct only: made on first use

    def add(self, agg: Aggregation, e: Event) -> None:
        value = e[3]
        if agg.kind == "count":
            self.n += 1
        elif agg.kind == "last":
            if self.last_at is None or e[:3] > self.last_at:
                self.last, self.last_at = value, e[:3]
        elif value is not None:
            self.n += 1
            self.total += float(value)
            self.low = value if self.low is None else min(self.low, value)
            self.high = value if self.high is None else max(self.high, value)
            if agg.kind == "distinct":
                if self.values is None:
                    self.values = set()
                self.values.add(value)


def _copy(base: Partial | None) -> Partial:
    if base is None:
        return Partial()
    return Partial(base.n, base.total, base.low, base.high, base.last, base.last_at,
                   set(base.values) if base.values is not None else None)  # fmt: skip


def partial_value(agg: Aggregation, base: Partial | None, events: Iterable[Event]) -> Any:
    """``agg`` over ``base`` and ``events`` (all earlier than the row, in its window)."""
    p = _copy(base)
    for e in events:
        p.add(agg, e)
    return _result(agg, p)


def _result(agg: Aggregation, p: Partial) -> Any:
    kind = agg.kind
    if kind == "count":
        return p.n
    if kind == "sum":
        return p.total
    if kind == "mean":
        return p.total / p.n if p.n else None
    if kind == "min":
        return p.low
    if kind == "max":
        return p.high
    if kind == "last":
        return p.last
    return len(p.values) if p.values is not None else 0


def value_at(
    agg: Aggregation,
    base: Partial | None,
    recent: Iterable[Event],
    extra: Iterable[Event],
    at: dt.datetime,
) -> Any:
    """``agg`` for an event at ``at``: the partial (unwindowed) and the events before
    ``at`` within the window, ``extra`` (earlier events of the same call) included."""
    lo = at - agg.window if agg.window is not None else None
    events = [e for e in (*recent, *extra) if e[0] < at and (lo is None or e[0] >= lo)]
    return partial_value(agg, base if agg.window is None else None, events)


def partials_of(
    name: str, agg: Aggregation, frame: pl.DataFrame | None
) -> Iterator[tuple[Any, Partial]]:
    """``(key, partial)`` of aggregation ``name`` from an incremental state ``base`` frame."""
    if agg.window is not None or frame is None or not frame.height:
        return
    cols = partial_columns(name, agg)
    for row in frame.select(agg.by, *cols).iter_rows(named=True):
        p = Partial()
        if agg.kind in ("count", "mean"):
            p.n = row[f"{name}__n"] or 0
        if agg.kind in ("sum", "mean"):
            p.total = row[f"{name}__sum"] or 0.0
        if agg.kind == "min":
            p.low = row[f"{name}__min"]
        if agg.kind == "max":
            p.high = row[f"{name}__max"]
        if agg.kind == "last" and row[f"{name}__has"]:
            p.last = row[f"{name}__last"]  # older than every recent event
        if agg.kind == "distinct":
            p.values = set(row[f"{name}__set"] or [])
        yield row[agg.by], p


def fold_events(
    agg: Aggregation,
    base: Partial | None,
    events: list[Event],
    frontier: dt.datetime,
    horizon: dt.timedelta,
) -> tuple[Partial | None, list[Event]]:
    """One key's fold: ``(partial with the events before frontier, events to keep)``.
    Unwindowed, old events join the partial; windowed, events older than
    ``frontier - horizon`` are dropped (no window reaches them any more)."""
    if agg.window is not None:
        return base, [e for e in events if e[0] >= frontier - horizon]
    old = [e for e in events if e[0] < frontier]
    if old:
        base = base if base is not None else Partial()
        for e in old:
            base.add(agg, e)
    return base, [e for e in events if e[0] >= frontier]


class KeyedState:
    """Partials and recent events per aggregation and key.

    >>> from features.aggregations import prior_count
    >>> s = KeyedState({"n": prior_count("u")})
    >>> t = dt.datetime(2026, 1, 1)
    >>> s.add({"u": 1, "t": t, "_kafka_partition": 0, "_kafka_offset": 0}, "t")
    >>> s.value("n", 1, t + dt.timedelta(seconds=1)), s.value("n", 1, t)
    (1, 0)
    """

    def __init__(self, aggs: dict[str, Aggregation]) -> None:
        self.aggs = aggs
        self.base: dict[str, dict[Any, Partial]] = {n: {} for n in aggs}
        self.recent: dict[str, defaultdict[Any, list[Event]]] = {n: defaultdict(list) for n in aggs}
        self.frontier: dt.datetime | None = None
        self.newest: dt.datetime | None = None
        self._cursors: dict[tuple[str, int], int] = {}
        self._seeded = False

    # -- what several processes would share ----------------------------------------

    @contextmanager
    def seeding(self) -> Iterator[bool]:
        """Hold the right to seed the state; yields whether it still needs seeding."""
        yield not self._seeded

    def mark_seeded(self) -> None:
        """The state holds the lake's feature state now."""
        self._seeded = True

    def cursors(self) -> dict[tuple[str, int], int]:
        """The last offset observed per (topic, partition)."""
        return self._cursors

    def claim(self, topic: str, partition: int, last: int) -> int:
        """Mark offsets up to ``last`` of ``topic[partition]`` observed; return the
        offset observed before (-1: none), so the caller adds only what is newer."""
        before = self._cursors.get((topic, partition), -1)
        if last > before:
            self._cursors[(topic, partition)] = last
        return before

    def note_newest(self, t: dt.datetime) -> None:
        """Raise the newest event time seen to ``t``."""
        if self.newest is None or t > self.newest:
            self.newest = t

    def prefetch(self, pairs: Iterable[tuple[str, Any]]) -> None:
        """Load what :meth:`value` will ask about (in memory: nothing to do)."""

    def load_base(self, frames: dict[str, pl.DataFrame]) -> None:
        """Partials from the incremental state's ``base`` frames (one per ``by``)."""
        for name, agg in self.aggs.items():
            self.base[name].update(partials_of(name, agg, frames.get(agg.by)))

    def event(self, name: str, row: dict[str, Any], t: str) -> tuple[Any, Event]:
        """``(key, event)`` of source-shaped ``row`` for aggregation ``name``."""
        agg = self.aggs[name]
        value = row.get(agg.column) if agg.column else None
        return row.get(agg.by), (row[t], row[KAFKA_PARTITION], row[KAFKA_OFFSET], value)

    def add(
        self, row: dict[str, Any], t: str, *, windows_only: bool = False, late: bool = False
    ) -> None:
        """Keep event ``row`` (source-shaped) for later queries. With ``windows_only``
        the partials already hold it; ``late`` (older than the frontier) puts it straight
        into the partials."""
        for name, agg in self.aggs.items():
            key, e = self.event(name, row, t)
            if key is None or (windows_only and agg.window is None):
                continue
            if late and agg.window is None:
                self.base[name].setdefault(key, Partial()).add(agg, e)
            else:
                insort(self.recent[name][key], e, key=event_order)  # kept in event-time order

    def add_many(self, rows: Iterable[tuple[dict[str, Any], bool, bool]], t: str) -> None:
        """:meth:`add` each ``(row, windows_only, late)``."""
        for row, windows_only, late in rows:
            self.add(row, t, windows_only=windows_only, late=late)

    def value(self, name: str, key: Any, at: dt.datetime, extra: list[Event] = ()) -> Any:  # type: ignore[assignment]
        """Feature ``name`` for an event of ``key`` at time ``at`` (``extra``: events of
        the same call, earlier ones count, sorted by event time). The recent events are
        sorted by event time too,
        so the window is found by bisection and a count is an index difference: a
        lookup costs the log of the key's recent events, not their number."""
        if key is None:
            return None
        agg = self.aggs[name]
        recent = self.recent[name].get(key, ())
        lo_t = at - agg.window if agg.window is not None else None
        hi = bisect_left(recent, at, key=_time)
        lo = bisect_left(recent, lo_t, key=_time) if lo_t is not None else 0
        xhi = bisect_left(extra, at, key=_time)  # extra is sorted by event time too
        mine = extra[bisect_left(extra, lo_t, key=_time) if lo_t is not None else 0 : xhi]
        base = self.base[name].get(key) if agg.window is None else None
        if agg.kind == "count":
            return (base.n if base is not None else 0) + max(hi - lo, 0) + len(mine)
        return partial_value(agg, base, [*recent[lo:hi], *mine])

    def values(
        self,
        name: str,
        key: Any,
        ats: list[dt.datetime],
        extra: list[Event] = (),  # type: ignore[assignment]
    ) -> list[Any]:
        """:meth:`value` at each of ``ats`` for one key. Unwindowed, one sweep in time
        order adds each earlier event once (not once per query): a batch with many
        events of one key costs m log m, not m squared."""
        agg = self.aggs[name]
        if key is None:
            return [None] * len(ats)
        if agg.window is not None or agg.kind == "count" or len(ats) < 4:
            return [self.value(name, key, at, extra) for at in ats]
        recent = self.recent[name].get(key, ())
        running = _copy(self.base[name].get(key))
        out: list[Any] = [None] * len(ats)
        i = j = 0
        for q in sorted(range(len(ats)), key=ats.__getitem__):
            at = ats[q]
            while i < len(recent) and recent[i][0] < at:
                running.add(agg, recent[i])
                i += 1
            while j < len(extra) and extra[j][0] < at:
                running.add(agg, extra[j])
                j += 1
            out[q] = _result(agg, running)
        return out

    def fold(self, frontier: dt.datetime, horizon: dt.timedelta) -> None:
        """Move events before ``frontier`` into the partials (unwindowed) and drop raw
        events older than ``frontier - horizon``; ``frontier`` becomes the frontier."""
        self.frontier = frontier
        for name, agg in self.aggs.items():
            recent, base = self.recent[name], self.base[name]
            for key in list(recent):
                partial, events = fold_events(agg, base.get(key), recent[key], frontier, horizon)
                if partial is not None:
                    base[key] = partial
                if events:
                    recent[key] = events
                else:
                    del recent[key]

    def size(self) -> tuple[int, int]:
        """(keys with partials, raw events kept)."""
        keys = sum(len(b) for b in self.base.values())
        events = sum(len(v) for r in self.recent.values() for v in r.values())
        return keys, events
