"""The online path: feature values for new events, from the incremental path's state.

:class:`OnlineFeatures` loads ``feature_state/<name>`` (partials per key and the
recent events) into memory (:class:`features.keyed.KeyedState`), catches up
with the source rows ingested since the state was written, and then answers
for new events: each event's features count every event of its key strictly
before it (those in the state, those observed since, and earlier events of the
same call), exactly as the batch path would once they are all in the lake.
Events already in the state (by the state's source cursor) are not counted
twice when they come again. Observed events older than the newest minus the
allowed lateness fold into the partials, and raw events older than the longest
window before that are dropped, so memory follows the keys, not the history.
An event older than that frontier is late: its values come from the state as
it stands and carry ``_late``.

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
>>> online.observe(ev)   # events added (ones already observed are skipped)
2
>>> online.features(ev.with_columns(pl.col("t") + dt.timedelta(minutes=1),
...                                 pl.col("_kafka_offset") + 2))["n"].to_list()
[2, 2]
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl

from features.compute import LATE, no_label, source_events
from features.definition import FeatureSet
from features.keyed import Event, KeyedState
from features.keyed import event_order as _order
from features.redis_state import RedisKeyedState
from features.state import FeatureState, event_columns, load_state, past_cursors
from lake import Lake, TableNotInLake
from lake.names import COORDINATES, DATE, ERASURES, KAFKA_OFFSET, KAFKA_PARTITION, KAFKA_TOPIC
from lake.names import LABEL_COORDINATES as LABEL_COORDS

__all__ = ["OnlineFeatures", "row_local_dicts"]


def _erasures(lake: Lake) -> int:
    """The version of the erasure audit table (-1 before the first erasure)."""
    try:
        return lake.table(ERASURES).version()
    except TableNotInLake:
        return -1


_FOLD_EVERY = 10_000  # observed events between folds into the partials


class OnlineFeatures:
    """Online feature values for ``fs``, from ``state`` (empty by default), kept in
    ``keyed`` (in memory by default; :class:`features.redis_state.RedisKeyedState`
    shares it between processes)."""

    def __init__(
        self,
        fs: FeatureSet,
        state: FeatureState | None = None,
        *,
        keyed: KeyedState | RedisKeyedState | None = None,
    ) -> None:
        fs.check_incremental()
        self.fs = fs
        self._keyed = keyed if keyed is not None else KeyedState(fs.aggregations)
        self._observed = 0
        self._columns = event_columns(fs)
        self._aggs = fs.aggregations
        self._names = fs.feature_names
        self._erasures: int | None = None  # the erasure audit's version this state reflects
        if state is not None or keyed is None:
            self._seed(state or FeatureState())

    def _seed(self, state: FeatureState) -> None:
        k, t = self._keyed, self.fs.event_time
        k.load_base({by: b for by, b in state.base.items() if b.height})
        if state.frontier is not None:
            k.frontier = state.frontier
        if state.newest is not None:
            k.note_newest(state.newest)
        for (r, topic, partition), o in state.cursors.items():
            if r == "source":
                k.claim(topic, partition, o)
        if state.events.height:
            before = [k.frontier is not None and row[t] < k.frontier
                      for row in state.events.iter_rows(named=True)]  # fmt: skip
            k.add_many(
                ((row, b, False) for row, b in zip(state.events.iter_rows(named=True), before,
                                                   strict=True)), t)  # fmt: skip
        k.mark_seeded()

    @classmethod
    def load(
        cls, lake: Lake, fs: FeatureSet, *, keyed: KeyedState | RedisKeyedState | None = None
    ) -> OnlineFeatures:
        """The state in the lake, caught up with the source rows ingested since (into
        ``keyed``; a shared store already seeded by another process is only caught up)."""
        keyed = keyed if keyed is not None else KeyedState(fs.aggregations)
        with keyed.seeding() as needed:
            if needed:
                cls(fs, load_state(lake, fs), keyed=keyed)
        online = cls(fs, keyed=keyed)
        online._erasures = _erasures(lake)
        online.catch_up(lake)
        return online

    def follow_erasures(self, lake: Lake) -> bool:
        """Start again from the lake when an erasure has landed since this state was
        loaded, so erased events stop counting in any aggregate; True if it did. (A
        state shared in Redis is cleared and reseeded by the erasing process.)"""
        seen = _erasures(lake)
        if self._erasures is None or seen == self._erasures:
            self._erasures = seen
            return False
        self._erasures = seen
        if isinstance(self._keyed, KeyedState):
            self._keyed = KeyedState(self.fs.aggregations)
            self._seed(load_state(lake, self.fs))
        self.catch_up(lake)
        return True

    @property
    def keys(self) -> int:
        """Keys with partial aggregates."""
        return self._keyed.size()[0]

    @property
    def events_kept(self) -> int:
        """Raw events kept (within the lateness and the longest window)."""
        return self._keyed.size()[1]

    def catch_up(self, lake: Lake) -> int:
        """Observe the source rows the lake holds past what this state has seen (a server
        that does not consume Kafka itself follows ingest this way); returns how many."""
        return self.observe(self.unseen(lake))

    def unseen(self, lake: Lake) -> pl.DataFrame:
        """The source rows the lake holds past what this state has seen (read only:
        :meth:`observe` them, under whatever lock guards this state)."""
        if not lake.exists(self.fs.source):
            return pl.DataFrame()
        seen = FeatureState(
            cursors={("source", t, p): o for (t, p), o in self._keyed.cursors().items()}
        )
        return past_cursors(source_events(lake, self.fs), seen, "source").collect()

    def _aggregate(self, rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
        """Each aggregation's value for each of ``rows`` (earlier rows of the call count)."""
        t, k, aggs = self.fs.event_time, self._keyed, self._aggs
        cursors = k.cursors()
        k.prefetch((n, row.get(a.by)) for row in rows for n, a in aggs.items())
        extra: dict[str, dict[Any, list[Event]]] = {n: {} for n in aggs}
        for row in rows:
            last = cursors.get((row.get(KAFKA_TOPIC), row.get(KAFKA_PARTITION)))  # type: ignore[arg-type]
            if last is not None and row[KAFKA_OFFSET] <= last:
                continue  # in the state already
            for name in aggs:
                key, e = k.event(name, row, t)
                if key is not None:
                    extra[name].setdefault(key, []).append(e)
        for by_key in extra.values():
            for events in by_key.values():
                events.sort(key=_order)  # what the state's lookups bisect
        values: dict[str, list[Any]] = {n: [None] * len(rows) for n in aggs}
        for name, agg in aggs.items():
            mine, out, by = extra[name], values[name], agg.by
            groups: dict[Any, list[int]] = {}
            for i, row in enumerate(rows):
                groups.setdefault(row.get(by), []).append(i)
            for key, idx in groups.items():
                got = k.values(name, key, [rows[i][t] for i in idx], mine.get(key, []))
                for i, v in zip(idx, got, strict=True):
                    out[i] = v
        return values

    def features(self, events: pl.DataFrame) -> pl.DataFrame:
        """Feature rows (no label) for ``events``, source-shaped rows."""
        fs, t = self.fs, self.fs.event_time
        events = _conform(events, fs)
        values = self._aggregate(events.to_dicts())
        local = events.select(
            fs.key,
            t,
            *[expr.alias(name) for name, expr in fs.row_local.items()],
            *COORDINATES,
            DATE,
        )
        aggs = pl.DataFrame(
            {n: pl.Series(n, v, dtype=_dtype(fs, n, events)) for n, v in values.items()}
        )
        frontier = self._keyed.frontier
        late = (pl.col(t) < frontier if frontier is not None else pl.lit(False)).alias(LATE)
        out = pl.concat([local, aggs], how="horizontal").with_columns(*no_label(), late)
        return out.select(fs.key, t, *fs.feature_names, "label", *COORDINATES, *LABEL_COORDS,
                          DATE, LATE)  # fmt: skip

    def feature_dicts(
        self, rows: list[dict[str, Any]], local: list[dict[str, Any]] | None = None
    ) -> list[dict[str, Any]]:
        """The features of a few source-shaped ``rows`` as dicts (name -> value, and
        ``_late``): the same values as :meth:`features`, without building frames, for
        request/response serving where a handful of events must cost microseconds.
        ``local``: the row-local features of ``rows`` if already computed
        (:func:`row_local_dicts`, e.g. for several requests at once).

        >>> import datetime as dt
        >>> from features.definition import FeatureSet, prior_count
        >>> fs = FeatureSet("f", "silver.s", key="id", event_time="t",
        ...                 features={"n": prior_count("u"), "x2": pl.col("x") * 2})
        >>> OnlineFeatures(fs).feature_dicts([{"id": 1, "u": 7, "x": 2.0,
        ...                                    "t": dt.datetime(2026, 1, 1)}])
        [{'n': 0, 'x2': 4.0, '_late': False}]
        """
        t, cols, names = self.fs.event_time, self._columns, self._names
        rows = [{c: r.get(c) for c in cols} for r in rows]
        values = self._aggregate(rows)
        if local is None:
            local = row_local_dicts(self.fs, rows)
        frontier = self._keyed.frontier
        out = []
        for i, row in enumerate(rows):
            d = {**local[i], **{n: v[i] for n, v in values.items()}}
            d = {n: d[n] for n in names}
            d[LATE] = frontier is not None and row[t] < frontier
            out.append(d)
        return out

    def observe(self, events: pl.DataFrame) -> int:
        """Add ``events`` to the state (after scoring them); ones it holds are skipped
        (by their offsets: several processes may observe the same partition). Returns
        how many were added."""
        if events.is_empty():
            return 0
        fs, t, k = self.fs, self.fs.event_time, self._keyed
        rows = [r for r in _conform(events, fs).iter_rows(named=True) if r[KAFKA_TOPIC] is not None]
        last: dict[tuple[str, int], int] = {}
        for r in rows:
            tp = (r[KAFKA_TOPIC], r[KAFKA_PARTITION])
            last[tp] = max(last.get(tp, -1), r[KAFKA_OFFSET])
        before = {tp: k.claim(tp[0], tp[1], o) for tp, o in last.items()}
        fresh = [r for r in rows if r[KAFKA_OFFSET] > before[(r[KAFKA_TOPIC], r[KAFKA_PARTITION])]]
        if not fresh:
            return 0
        frontier = k.frontier
        k.add_many(((r, False, frontier is not None and r[t] < frontier) for r in fresh), t)
        k.note_newest(max(r[t] for r in fresh))
        self._observed += len(fresh)
        if self._observed >= _FOLD_EVERY:
            self._fold()
        return len(fresh)

    def _fold(self) -> None:
        """Move events before ``newest - allowed lateness`` into the partials."""
        k = self._keyed
        if k.newest is None:
            return
        frontier: dt.datetime = k.newest - self.fs.allowed_lateness
        if k.frontier is not None and frontier <= k.frontier:
            return
        k.fold(frontier, self.fs.horizon)
        self._observed = 0


def row_local_dicts(fs: FeatureSet, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The row-local (expression) features of source-shaped ``rows``, one dict per row,
    evaluated in one small frame (Polars plans a query per call: batch the rows).

    >>> from features.definition import FeatureSet
    >>> fs = FeatureSet("f", "silver.s", key="id", event_time="t",
    ...                 features={"x2": pl.col("x") * 2})
    >>> row_local_dicts(fs, [{"x": 1.0}, {"x": 2.5}])
    [{'x2': 2.0}, {'x2': 5.0}]
    """
    if not fs.row_local or not rows:
        return [{} for _ in rows]
    frame = pl.DataFrame(rows, infer_schema_length=None)
    return frame.select(e.alias(n) for n, e in fs.row_local.items()).to_dicts()


def _dtype(fs: FeatureSet, name: str, events: pl.DataFrame) -> pl.DataType:
    agg = fs.aggregations[name]
    if agg.kind in ("count", "distinct"):
        return pl.Int64()
    if agg.kind in ("sum", "mean"):
        return pl.Float64()
    assert agg.column is not None
    return events.schema[agg.column]


def _conform(frame: pl.DataFrame, fs: FeatureSet) -> pl.DataFrame:
    """``frame`` with the event columns of ``fs`` (absent ones null)."""
    cols = event_columns(fs)
    return frame.with_columns(pl.lit(None).alias(c) for c in cols if c not in frame.columns).select(
        cols
    )
