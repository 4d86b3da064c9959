"""The model registry, kept in the lake as Delta tables under ``models/``.

- ``models/versions``: one row per model version: the pickled artifact, its
  metrics and parameters, its lineage (the Delta versions of the tables it read,
  the event-time range, and ``lineage_offsets``: the Kafka offsets, per topic and
  partition, of every record that trained it), creation time and code version.
- ``models/aliases``: the history of alias moves (``champion``, ``challenger``);
  the newest row per (model, alias) is current.
- ``models/decisions``: every promotion decision with the numbers behind it.
- ``models/drift``: every drift detection (event time, version, statistic).
- ``models/trace``: the running metric of each online or batch run over event
  time, for plots.
- ``models/launches``: the history of launch configurations (shadow, canary or
  none, the challenger version and the canary fraction, who set it and why); the
  newest row per model is current (:mod:`training.launches`).
- ``models/access``: the model access log: every load and unload of a version
  by a serving process (front door, host, pid, OS user), so "who served which
  version, from when to when" is a query.

A model's lineage offsets are what erasure checks (:meth:`ModelRegistry.trained_on`)
and what the lineage query reads; an online version's cover everything its
ancestors learned too.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
import pickle
import socket
from dataclasses import dataclass, field
from typing import Any

import polars as pl
import pyarrow as pa
from deltalake import write_deltalake

from lake import ErasedRecords, Lake
from lake.names import UTC_MICROS, ModelTable, model_table
from training.errors import LaunchError, ModelNotFound

__all__ = [
    "Cursor",
    "Launch",
    "ModelRegistry",
    "ModelVersion",
    "OffsetRanges",
    "advance",
    "merge_ranges",
    "os_user",
]
_SCHEMAS = {
    "versions": pa.schema(
        [
            ("name", pa.string()),
            ("version", pa.int64()),
            ("kind", pa.string()),
            ("parent_version", pa.int64()),
            ("created_at", UTC_MICROS),
            ("artifact", pa.large_binary()),
            ("metrics", pa.string()),
            ("params", pa.string()),
            ("lineage", pa.string()),
            ("lineage_offsets", pa.string()),
            ("cursor", pa.string()),
            ("rows", pa.int64()),
            ("event_time_from", UTC_MICROS),
            ("event_time_to", UTC_MICROS),
            ("code_version", pa.string()),
        ]
    ),
    "aliases": pa.schema(
        [("name", pa.string()), ("alias", pa.string()), ("version", pa.int64()),
         ("set_at", UTC_MICROS), ("reason", pa.string()), ("by", pa.string())]
    ),
    "launches": pa.schema(
        [("name", pa.string()), ("mode", pa.string()), ("challenger", pa.int64()),
         ("fraction", pa.float64()), ("set_at", UTC_MICROS), ("by", pa.string()),
         ("reason", pa.string())]
    ),
    "access": pa.schema(
        [("name", pa.string()), ("version", pa.int64()), ("role", pa.string()),
         ("event", pa.string()), ("at", UTC_MICROS), ("front_door", pa.string()),
         ("target", pa.string()), ("host", pa.string()), ("pid", pa.int64()),
         ("user", pa.string())]
    ),
    "decisions": pa.schema(
        [("name", pa.string()), ("decided_at", UTC_MICROS), ("challenger", pa.int64()),
         ("champion", pa.int64()), ("metric", pa.string()), ("challenger_score", pa.float64()),
         ("champion_score", pa.float64()), ("margin", pa.float64()), ("holdout_rows", pa.int64()),
         ("promoted", pa.bool_()), ("reason", pa.string())]
    ),
    "drift": pa.schema(
        [("name", pa.string()), ("version", pa.int64()), ("event_time", UTC_MICROS),
         ("detected_at", UTC_MICROS), ("detector", pa.string()), ("statistic", pa.float64()),
         ("rows_seen", pa.int64())]
    ),
    "trace": pa.schema(
        [("name", pa.string()), ("version", pa.int64()), ("kind", pa.string()),
         ("event_time", UTC_MICROS), ("metric", pa.string()), ("value", pa.float64()),
         ("rows", pa.int64())]
    ),
}  # fmt: skip

OffsetRanges = dict[str, dict[str, list[int]]]  # topic -> partition -> [first, last]
Cursor = dict[str, dict[str, int]]  # topic -> partition -> last offset consumed


def merge_ranges(a: OffsetRanges, b: OffsetRanges) -> OffsetRanges:
    """Union of two lineage offset maps, as covering ranges.

    >>> merge_ranges({"t": {"0": [0, 9]}}, {"t": {"0": [10, 19], "1": [3, 4]}})
    {'t': {'0': [0, 19], '1': [3, 4]}}
    """
    out: OffsetRanges = {t: {p: list(r) for p, r in parts.items()} for t, parts in a.items()}
    for t, parts in b.items():
        for p, (lo, hi) in parts.items():
            cur = out.setdefault(t, {}).get(p)
            out[t][p] = [min(cur[0], lo), max(cur[1], hi)] if cur else [lo, hi]
    return out


def advance(a: Cursor, b: Cursor) -> Cursor:
    """Cursor ``a`` moved to ``b`` wherever ``b`` is further.

    >>> advance({"t": {"0": 9}}, {"t": {"0": 19, "1": 4}})
    {'t': {'0': 19, '1': 4}}
    """
    out: Cursor = {t: dict(parts) for t, parts in a.items()}
    for t, parts in b.items():
        mine = out.setdefault(t, {})
        for p, last in parts.items():
            mine[p] = max(mine.get(p, last), last)
    return out


def os_user() -> str:
    """The OS user running this process (what audit rows record when no one is named)."""
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry (some containers)
        return f"uid:{os.getuid()}"


@dataclass(frozen=True)
class Launch:
    """How a model is released: ``mode`` ``"none"`` (the champion serves everything),
    ``"shadow"`` (the ``challenger`` version scores the same traffic; its predictions are
    recorded, never returned or published) or ``"canary"`` (a ``fraction`` of entities,
    by a stable hash of the key, is served by the challenger)."""

    name: str
    mode: str = "none"
    challenger: int | None = None
    fraction: float = 0.0
    set_at: dt.datetime | None = None
    by: str = ""
    reason: str = ""


@dataclass
class ModelVersion:
    """One registered model version."""

    name: str
    version: int
    kind: str  # "online" or "batch"
    model: Any = field(repr=False)
    state: dict[str, Any] = field(repr=False)  # what an online run continues from
    metrics: dict[str, float]
    params: dict[str, Any]
    lineage: dict[str, Any]
    lineage_offsets: OffsetRanges
    cursor: Cursor
    rows: int
    created_at: dt.datetime
    event_time_from: dt.datetime | None
    event_time_to: dt.datetime | None
    parent_version: int | None
    code_version: str


class ModelRegistry:
    """Model versions, aliases, decisions, drift and traces under ``<root>/models``.

    >>> import tempfile
    >>> reg = ModelRegistry(Lake(tempfile.mkdtemp()))
    >>> v = reg.register("eta", "batch", model={"w": 1}, metrics={"MAE": 3.5}, rows=10)
    >>> v.version, reg.load("eta").model
    (1, {'w': 1})
    >>> reg.set_alias("eta", "champion", 1, reason="first")
    >>> reg.load("eta", alias="champion").version
    1
    """

    def __init__(self, lake: Lake) -> None:
        self.lake = lake

    def _scan(self, table: ModelTable) -> pl.LazyFrame:
        """``models/<table>`` as a lazy scan, so reads take only the columns they need
        (not every pickled artifact to number a version)."""
        name = model_table(table)
        if not self.lake.exists(name):
            return pl.DataFrame(_SCHEMAS[table].empty_table()).lazy()
        return self.lake.scan(name)

    def _read(self, table: ModelTable) -> pl.DataFrame:
        return self._scan(table).collect()

    def _append(self, table: ModelTable, rows: list[dict[str, Any]]) -> None:
        if rows:
            write_deltalake(
                self.lake.uri(model_table(table)),
                pa.Table.from_pylist(rows, schema=_SCHEMAS[table]),
                mode="append",
                schema_mode="merge",  # tables written before a column was added
                storage_options=self.lake.storage_options,
            )

    # -- versions -------------------------------------------------------------------

    def register(
        self,
        name: str,
        kind: str,
        *,
        model: Any,
        state: dict[str, Any] | None = None,
        metrics: dict[str, float] | None = None,
        params: dict[str, Any] | None = None,
        lineage: dict[str, Any] | None = None,
        lineage_offsets: OffsetRanges | None = None,
        cursor: Cursor | None = None,
        rows: int = 0,
        event_time_from: dt.datetime | None = None,
        event_time_to: dt.datetime | None = None,
        parent_version: int | None = None,
        code_version: str = "",
    ) -> ModelVersion:
        """Save a new version of ``name``; versions count up from 1."""
        version = self.next_version(name)
        now = dt.datetime.now(dt.UTC)
        mv = ModelVersion(
            name, version, kind, model, state or {}, metrics or {}, params or {},
            lineage or {}, lineage_offsets or {}, cursor or {}, rows, now,
            event_time_from, event_time_to, parent_version, code_version,
        )  # fmt: skip
        self._append(
            "versions",
            [
                {
                    "name": name,
                    "version": version,
                    "kind": kind,
                    "parent_version": parent_version,
                    "created_at": now,
                    "artifact": pickle.dumps({"model": model, "state": mv.state}),
                    "metrics": json.dumps(mv.metrics),
                    "params": json.dumps(mv.params, default=str),
                    "lineage": json.dumps(mv.lineage, default=str),
                    "lineage_offsets": json.dumps(mv.lineage_offsets),
                    "cursor": json.dumps(mv.cursor),
                    "rows": rows,
                    "event_time_from": event_time_from,
                    "event_time_to": event_time_to,
                    "code_version": code_version,
                }
            ],
        )
        return mv

    def next_version(self, name: str) -> int:
        """The number the next :meth:`register` of ``name`` will get."""
        last = (
            self._scan("versions")
            .filter(pl.col("name") == name)
            .select(pl.col("version").max())
            .collect()
            .item()
        )
        return int(last or 0) + 1

    def versions(self, name: str | None = None) -> pl.DataFrame:
        """Versions (without artifacts), newest last; of ``name`` if given."""
        df = self._scan("versions").drop("artifact").collect()
        if name is not None:
            df = df.filter(pl.col("name") == name)
        return df.sort(["name", "version"])

    def names(self) -> list[str]:
        """Every model name with at least one version."""
        return sorted(self._scan("versions").select("name").unique().collect()["name"].to_list())

    def load(
        self,
        name: str,
        *,
        version: int | None = None,
        alias: str | None = None,
        kind: str | None = None,
    ) -> ModelVersion:
        """A version of ``name``: by number, by alias, or the newest (of ``kind``)."""
        if alias is not None:
            version = self.alias(name, alias)
            if version is None:
                raise ModelNotFound(f"alias {alias!r} of model {name!r}", self.names())
        rows = self._scan("versions").filter(pl.col("name") == name)
        if kind is not None:
            rows = rows.filter(pl.col("kind") == kind)
        if version is not None:
            rows = rows.filter(pl.col("version") == version)
        df = rows.drop("artifact").collect()
        if df.is_empty():
            what = f"version {version} of model {name!r}" if version else f"model {name!r}"
            raise ModelNotFound(what + (f" ({kind})" if kind else ""), self.names())
        row = df.sort("version").row(-1, named=True)
        blob = (  # only this version's artifact is read
            self._scan("versions")
            .filter((pl.col("name") == name) & (pl.col("version") == row["version"]))
            .select("artifact")
            .collect()
            .item()
        )
        artifact = pickle.loads(blob)
        return ModelVersion(
            name=row["name"],
            version=row["version"],
            kind=row["kind"],
            model=artifact["model"],
            state=artifact["state"],
            metrics=json.loads(row["metrics"]),
            params=json.loads(row["params"]),
            lineage=json.loads(row["lineage"]),
            lineage_offsets=json.loads(row["lineage_offsets"]),
            cursor=json.loads(row["cursor"]),
            rows=row["rows"],
            created_at=row["created_at"],
            event_time_from=row["event_time_from"],
            event_time_to=row["event_time_to"],
            parent_version=row["parent_version"],
            code_version=row["code_version"],
        )

    def latest(self, name: str, kind: str | None = None) -> ModelVersion | None:
        """The newest version of ``name`` (of ``kind``), None if there is none."""
        try:
            return self.load(name, kind=kind)
        except ModelNotFound:
            return None

    # -- aliases, decisions, drift, traces ---------------------------------------------

    def set_alias(
        self, name: str, alias: str, version: int, *, reason: str = "", by: str = ""
    ) -> None:
        """Point ``alias`` of ``name`` at ``version`` (``by``: who; default the OS user)."""
        self._check_version(name, version)
        now = dt.datetime.now(dt.UTC)
        row = {"name": name, "alias": alias, "version": version, "set_at": now, "reason": reason}
        self._append("aliases", [{**row, "by": by or os_user()}])

    def _check_version(self, name: str, version: int) -> None:
        """Raise :class:`ModelNotFound` unless ``version`` of ``name`` exists (no artifact read)."""
        n = (
            self._scan("versions")
            .filter((pl.col("name") == name) & (pl.col("version") == version))
            .select(pl.len())
            .collect()
            .item()
        )
        if not n:
            raise ModelNotFound(f"version {version} of model {name!r}", self.names())

    def alias_history(self, name: str) -> pl.DataFrame:
        """Every move of every alias of ``name``, oldest first: the deploy history."""
        return self._read("aliases").filter(pl.col("name") == name).sort("set_at")

    def alias(self, name: str, alias: str) -> int | None:
        """The version ``alias`` of ``name`` points at, None if unset."""
        df = self._read("aliases").filter((pl.col("name") == name) & (pl.col("alias") == alias))
        return None if df.is_empty() else int(df.sort("set_at")["version"][-1])

    def aliases(self, name: str) -> dict[str, int]:
        """Every alias of ``name`` and its current version."""
        df = self._read("aliases").filter(pl.col("name") == name).sort("set_at")
        return {a: int(v) for a, v in zip(df["alias"], df["version"], strict=True)}

    def set_launch(self, launch: Launch) -> Launch:
        """Make ``launch`` the current launch configuration of its model (recorded with who,
        when and why); the challenger must exist. Scorers pick it up without a restart."""
        if launch.mode not in ("none", "shadow", "canary"):
            raise LaunchError(f"launch mode must be none, shadow or canary, not {launch.mode!r}")
        if launch.mode != "none":
            if launch.challenger is None:
                raise LaunchError(
                    f"a {launch.mode} launch needs a challenger version (--challenger)"
                )
            self._check_version(launch.name, launch.challenger)
        if launch.mode == "canary" and not 0.0 < launch.fraction <= 1.0:
            raise LaunchError(f"a canary's fraction must be in (0, 1], not {launch.fraction}")
        row = {
            **launch.__dict__,
            "set_at": dt.datetime.now(dt.UTC),
            "by": launch.by or os_user(),
            "challenger": launch.challenger if launch.mode != "none" else None,
        }
        self._append("launches", [row])
        return Launch(**row)

    def launch(self, name: str) -> Launch:
        """The current launch configuration of ``name`` (mode ``none`` if never set)."""
        df = self.launch_history(name)
        return Launch(name) if df.is_empty() else Launch(**df.row(-1, named=True))

    def launch_history(self, name: str) -> pl.DataFrame:
        """Every launch configuration of ``name``, oldest first."""
        return self._read("launches").filter(pl.col("name") == name).sort("set_at")

    def record_access(
        self, name: str, version: int, role: str, event: str, *, front_door: str, target: str
    ) -> None:
        """Log that this process ``event``-ed (``load``/``unload``) ``version`` of ``name``
        in ``role`` behind ``front_door``, with host, pid and OS user."""
        self._append(
            "access",
            [
                {
                    "name": name, "version": version, "role": role, "event": event,
                    "at": dt.datetime.now(dt.UTC), "front_door": front_door, "target": target,
                    "host": socket.gethostname(), "pid": os.getpid(), "user": os_user(),
                }
            ],
        )  # fmt: skip

    def access_log(self, name: str | None = None) -> pl.DataFrame:
        """The model access log (of ``name``), oldest first: who loaded or unloaded which
        version, where, in which role."""
        df = self._read("access")
        return (df if name is None else df.filter(pl.col("name") == name)).sort("at")

    def record_decision(self, **row: Any) -> None:
        """Append a promotion decision (columns of ``models/decisions``)."""
        self._append("decisions", [{"decided_at": dt.datetime.now(dt.UTC), **row}])

    def decisions(self, name: str) -> pl.DataFrame:
        """Every promotion decision about ``name``, oldest first."""
        return self._read("decisions").filter(pl.col("name") == name).sort("decided_at")

    def record_drift(self, rows: list[dict[str, Any]]) -> None:
        """Append drift detections (columns of ``models/drift``)."""
        now = dt.datetime.now(dt.UTC)
        self._append("drift", [{"detected_at": now, **r} for r in rows])

    def drift(self, name: str, *, after_version: int = 0) -> pl.DataFrame:
        """Drift detections of ``name`` by versions newer than ``after_version``."""
        df = self._read("drift")
        return df.filter((pl.col("name") == name) & (pl.col("version") > after_version)).sort(
            "event_time"
        )

    def record_trace(self, rows: list[dict[str, Any]]) -> None:
        """Append points of a run's running metric over event time."""
        self._append("trace", rows)

    def trace(self, name: str | None = None) -> pl.DataFrame:
        """The metric traces (of ``name``), by event time."""
        df = self._read("trace")
        if name is not None:
            df = df.filter(pl.col("name") == name)
        return df.sort(["name", "event_time"])

    # -- erasure ------------------------------------------------------------------------

    def trained_on(self, erased: ErasedRecords) -> list[str]:
        """Versions (``"name:version"``) whose lineage offset ranges include any of the
        ``erased`` records: the ones to retrain after an erasure.

        >>> import tempfile
        >>> reg = ModelRegistry(Lake(tempfile.mkdtemp()))
        >>> _ = reg.register("eta", "batch", model=None, lineage_offsets={"o": {"0": [0, 9]}})
        >>> reg.trained_on({("o", 0): [5]}), reg.trained_on({("o", 0): [10]})
        (['eta:1'], [])
        """
        hits = []
        versions = self._scan("versions").select("name", "version", "lineage_offsets").collect()
        for name, version, lineage in versions.iter_rows():
            ranges = json.loads(lineage or "{}")
            for (topic, partition), offsets in erased.items():
                lo_hi = ranges.get(topic, {}).get(str(partition))
                if lo_hi and any(lo_hi[0] <= o <= lo_hi[1] for o in offsets):
                    hits.append(f"{name}:{version}")
                    break
        return sorted(hits)
