"""Where a scoring process keeps its online feature state: in memory, loaded from the
lake (the single-process default), or in Redis, shared by every scorer and HTTP
worker of the lake (``online_store_url``)."""

from __future__ import annotations

import hashlib

from features import FeatureSet, OnlineFeatures
from features.redis_state import RedisKeyedState
from lake import Lake

__all__ = ["load_online", "reset_online"]


def load_online(lake: Lake, fs: FeatureSet, store_url: str | None = None) -> OnlineFeatures:
    """The online features of ``fs``: in memory, or in the Redis at ``store_url``
    (seeded from the lake by the first process; namespaced by lake, so one Redis can
    serve several lakes).

    >>> load_online(Lake("./lake"), eta.feature_set, "redis://127.0.0.1:6379/0")  # doctest: +SKIP
    """
    if store_url is None:
        return OnlineFeatures.load(lake, fs)
    return OnlineFeatures.load(lake, fs, keyed=_shared(lake, fs, store_url))


def _shared(lake: Lake, fs: FeatureSet, store_url: str) -> RedisKeyedState:
    space = f"{fs.name}@{hashlib.blake2b(lake.root.encode(), digest_size=6).hexdigest()}"
    return RedisKeyedState.from_url(store_url, space, fs.aggregations)


def reset_online(lake: Lake, fs: FeatureSet, store_url: str) -> None:
    """Clear ``fs``'s shared state in the Redis at ``store_url`` and seed it again from
    the lake (after an erasure: the erased events must stop counting for every
    process sharing it)."""
    _shared(lake, fs, store_url).clear()
    load_online(lake, fs, store_url)
