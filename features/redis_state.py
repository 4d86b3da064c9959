"""The online feature state in Redis, shared by several scoring processes.

:class:`RedisKeyedState` has the methods of :class:`features.keyed.KeyedState`
and the same semantics (the same functions compute values and folds); what it
keeps lives in Redis under ``eventlake:online:<feature set>:``:

- ``b:<agg>``: a hash, key -> the pickled partial of older events;
- ``r:<agg>:<key>``: a list of pickled recent events, and ``rk:<agg>``, the set
  of keys that have one (what a fold walks);
- ``cursor``: a hash, ``topic|partition`` -> last offset observed. A process
  claims a batch's offsets atomically (a Lua script) before adding its events,
  so two processes observing the same partition (a scorer and an HTTP server
  following the lake) never count an event twice;
- ``meta``: frontier and newest event time; ``seeded`` once the lake's state is in.

Seeding and folding take a Redis lock, so one process does each at a time.
Reads for a call are fetched in one round trip (:meth:`RedisKeyedState.prefetch`).
Values are pickled: the Redis server is trusted, as the lake is.
"""

from __future__ import annotations

import datetime as dt
import pickle
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import polars as pl
import redis

from features.aggregations import Aggregation
from features.keyed import Event, Partial, fold_events, partials_of, value_at
from lake.names import KAFKA_OFFSET, KAFKA_PARTITION

__all__ = ["RedisKeyedState"]

_CLAIM = """
local before = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '-1')
if tonumber(ARGV[2]) > before then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
return before
"""
_LOCK_MS = 120_000


class RedisKeyedState:
    """Partials, recent events, cursors and frontier of feature set ``name`` in Redis.

    >>> state = RedisKeyedState(redis.Redis.from_url(url), "eta", fs.aggregations)  # doctest: +SKIP
    >>> OnlineFeatures.load(lake, fs, keyed=state).features(events)                 # doctest: +SKIP
    """

    def __init__(self, client: redis.Redis, name: str, aggs: dict[str, Aggregation]) -> None:
        self.client: Any = client  # redis-py types every call as sync-or-async
        self.aggs = aggs
        self.ns = f"eventlake:online:{name}:"
        self._claim = client.register_script(_CLAIM)
        self._cache: dict[tuple[str, Any], tuple[Partial | None, list[Event]]] = {}

    @classmethod
    def from_url(cls, url: str, name: str, aggs: dict[str, Aggregation]) -> RedisKeyedState:
        """Connect to the Redis at ``url`` (``redis://host:port/db`` or ``unix://path``)."""
        return cls(redis.Redis.from_url(url), name, aggs)

    def _k(self, *parts: str) -> str:
        return self.ns + ":".join(parts)

    def _list(self, name: str, key: Any) -> str:
        return self._k("r", name, pickle.dumps(key).hex())

    # -- seeding, cursors, frontier --------------------------------------------------

    @contextmanager
    def seeding(self) -> Iterator[bool]:
        """Hold the seeding lock; yields whether the state still needs seeding."""
        with self.client.lock(self._k("seedlock"), timeout=_LOCK_MS / 1000, blocking_timeout=300):
            yield not self.client.exists(self._k("seeded"))

    def mark_seeded(self) -> None:
        self.client.set(self._k("seeded"), str(time.time()))

    def cursors(self) -> dict[tuple[str, int], int]:
        out = {}
        for field, value in self.client.hgetall(self._k("cursor")).items():
            topic, _, partition = field.decode().rpartition("|")
            out[(topic, int(partition))] = int(value)
        return out

    def claim(self, topic: str, partition: int, last: int) -> int:
        return int(self._claim(keys=[self._k("cursor")], args=[f"{topic}|{partition}", last]))

    def _meta(self, field: str) -> dt.datetime | None:
        raw = self.client.hget(self._k("meta"), field)
        return None if raw is None else pickle.loads(raw)

    @property
    def frontier(self) -> dt.datetime | None:
        return self._meta("frontier")

    @frontier.setter
    def frontier(self, value: dt.datetime | None) -> None:
        self.client.hset(self._k("meta"), "frontier", pickle.dumps(value))

    @property
    def newest(self) -> dt.datetime | None:
        return self._meta("newest")

    def note_newest(self, t: dt.datetime) -> None:
        key = self._k("meta")
        with self.client.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    raw = pipe.hget(key, "newest")
                    current = None if raw is None else pickle.loads(raw)
                    if current is not None and current >= t:
                        return
                    pipe.multi()
                    pipe.hset(key, "newest", pickle.dumps(t))
                    pipe.execute()
                    return
                except redis.WatchError:
                    continue

    # -- state -------------------------------------------------------------------------

    def load_base(self, frames: dict[str, pl.DataFrame]) -> None:
        with self.client.pipeline(transaction=False) as pipe:
            for name, agg in self.aggs.items():
                for key, p in partials_of(name, agg, frames.get(agg.by)):
                    pipe.hset(self._k("b", name), pickle.dumps(key), pickle.dumps(p))
            pipe.execute()

    def event(self, name: str, row: dict[str, Any], t: str) -> tuple[Any, Event]:
        agg = self.aggs[name]
        value = row.get(agg.column) if agg.column else None
        return row.get(agg.by), (row[t], row[KAFKA_PARTITION], row[KAFKA_OFFSET], value)

    def add_many(self, rows: Iterable[tuple[dict[str, Any], bool, bool]], t: str) -> None:
        late: list[tuple[str, Any, Event]] = []
        with self.client.pipeline(transaction=False) as pipe:
            for row, windows_only, is_late in rows:
                for name, agg in self.aggs.items():
                    key, e = self.event(name, row, t)
                    if key is None or (windows_only and agg.window is None):
                        continue
                    if is_late and agg.window is None:
                        late.append((name, key, e))
                    else:
                        pipe.rpush(self._list(name, key), pickle.dumps(e))
                        pipe.sadd(self._k("rk", name), pickle.dumps(key))
            pipe.execute()
        for name, key, e in late:  # rare: straight into the partial, atomically
            self._update_partial(name, key, lambda p, e=e, a=self.aggs[name]: p.add(a, e))

    def _update_partial(self, name: str, key: Any, change: Any) -> None:
        hkey, field = self._k("b", name), pickle.dumps(key)
        with self.client.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(hkey)
                    raw = pipe.hget(hkey, field)
                    p = Partial() if raw is None else pickle.loads(raw)
                    change(p)
                    pipe.multi()
                    pipe.hset(hkey, field, pickle.dumps(p))
                    pipe.execute()
                    return
                except redis.WatchError:
                    continue

    def prefetch(self, pairs: Iterable[tuple[str, Any]]) -> None:
        """Fetch the partials and recent events of ``(aggregation, key)`` pairs in one
        round trip; :meth:`value` answers from them until the next prefetch."""
        wanted = list(dict.fromkeys((n, k) for n, k in pairs if k is not None))
        with self.client.pipeline(transaction=False) as pipe:
            for name, key in wanted:
                pipe.hget(self._k("b", name), pickle.dumps(key))
                pipe.lrange(self._list(name, key), 0, -1)
            got = pipe.execute()
        self._cache = {
            pair: (
                None if got[2 * i] is None else pickle.loads(got[2 * i]),
                [pickle.loads(e) for e in got[2 * i + 1]],
            )
            for i, pair in enumerate(wanted)
        }

    def value(self, name: str, key: Any, at: dt.datetime, extra: list[Event] = ()) -> Any:  # type: ignore[assignment]
        if key is None:
            return None
        if (name, key) not in self._cache:
            self.prefetch([(name, key)])
        base, recent = self._cache[(name, key)]
        return value_at(self.aggs[name], base, recent, extra, at)

    def values(
        self,
        name: str,
        key: Any,
        ats: list[dt.datetime],
        extra: list[Event] = (),  # type: ignore[assignment]
    ) -> list[Any]:
        return [self.value(name, key, at, extra) for at in ats]

    def fold(self, frontier: dt.datetime, horizon: dt.timedelta) -> None:
        """Fold every key (one process at a time; events appended meanwhile are kept)."""
        with self.client.lock(self._k("foldlock"), timeout=_LOCK_MS / 1000, blocking_timeout=300):
            current = self.frontier
            if current is not None and frontier <= current:
                return  # another process folded this far already
            for name, agg in self.aggs.items():
                for raw_key in self.client.smembers(self._k("rk", name)):
                    self._fold_key(name, agg, pickle.loads(raw_key), frontier, horizon)
            self.frontier = frontier

    def _fold_key(
        self, name: str, agg: Aggregation, key: Any, frontier: dt.datetime, horizon: dt.timedelta
    ) -> None:
        lkey, hkey, field = self._list(name, key), self._k("b", name), pickle.dumps(key)
        raw = self.client.lrange(lkey, 0, -1)
        base_raw = self.client.hget(hkey, field)
        base = None if base_raw is None else pickle.loads(base_raw)
        partial, keep = fold_events(agg, base, [pickle.loads(e) for e in raw], frontier, horizon)
        with self.client.pipeline() as pipe:  # MULTI: the fold of this key lands whole
            if partial is not None and agg.window is None:
                pipe.hset(hkey, field, pickle.dumps(partial))
            pipe.ltrim(lkey, len(raw), -1)  # drop what was read; newer appends stay
            if keep:
                pipe.rpush(lkey, *[pickle.dumps(e) for e in keep])
            pipe.execute()

    def size(self) -> tuple[int, int]:
        keys = sum(int(self.client.hlen(self._k("b", n))) for n in self.aggs)
        events = 0
        for name in self.aggs:
            for raw_key in self.client.smembers(self._k("rk", name)):
                events += int(self.client.llen(self._list(name, pickle.loads(raw_key))))
        return keys, events

    def clear(self) -> None:
        """Delete this feature set's state from Redis (it is reseeded from the lake)."""
        for key in self.client.scan_iter(match=self.ns + "*", count=1000):
            self.client.delete(key)
