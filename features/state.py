"""The state of a feature set's incremental path, kept in the lake: ``feature_state/<name>``.

One Delta table, rewritten whole by each incremental run in one commit, so
every part moves together (its size follows the keys and the events inside
the allowed lateness and the longest window, never the history):

- ``base:<by>``: per key of ``by``, the partial aggregates (count, sum, min,
  max, last, distinct set) of every event older than the frontier, for the
  unwindowed aggregations by ``by``;
- ``event``: the source events the next runs still need: those at or after the
  frontier (not emitted yet) and, with windows, those within the longest
  window before it;
- ``unlabeled``: key and day of each emitted row still waiting for its label,
  so a label that arrives updates only its row's day;
- ``label``: labels whose row has not been emitted yet;
- ``cursor``: the last source and label offset consumed per topic-partition;
- ``meta``: the frontier (rows strictly before it are emitted) and the newest
  event time seen.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import polars as pl
from deltalake import write_deltalake

from features.aggregations import partial_columns
from features.definition import FeatureSet
from lake import Lake
from lake.names import (
    COORDINATES,
    DATE,
    KAFKA_OFFSET,
    KAFKA_PARTITION,
    KAFKA_TOPIC,
    LABEL_COORDINATES,
    feature_state,
)

__all__ = [
    "EMITTED",
    "FeatureState",
    "consumed",
    "event_columns",
    "load_state",
    "past_cursors",
    "save_state",
]

EMITTED = "_emitted"  # a kept event whose feature row was written already


def event_columns(fs: FeatureSet) -> list[str]:
    """The columns of a source event the incremental and online paths keep."""
    return list(dict.fromkeys([*fs.inputs, *COORDINATES, DATE]))


Cursor = dict[tuple[str, str, int], int]  # (role, topic, partition) -> last offset


@dataclass
class FeatureState:
    """What the incremental path carries from one run to the next."""

    base: dict[str, pl.DataFrame] = field(default_factory=dict)  # by -> partials per key
    events: pl.DataFrame = field(default_factory=pl.DataFrame)
    unlabeled: pl.DataFrame = field(default_factory=pl.DataFrame)
    labels: pl.DataFrame = field(default_factory=pl.DataFrame)
    cursors: Cursor = field(default_factory=dict)
    frontier: dt.datetime | None = None
    newest: dt.datetime | None = None
    version: int | None = None  # of the state table when loaded

    def cursor(self, role: str, topic: str, partition: int) -> int:
        """Last offset of ``topic[partition]`` consumed as ``role`` (-1: none)."""
        return self.cursors.get((role, topic, partition), -1)

    def keys(self) -> int:
        """Keys with partial aggregates, over every ``by``."""
        return sum(b.height for b in self.base.values())


def consumed(state: FeatureState, role: str) -> pl.Expr:
    """Rows at or before the state's ``role`` cursor of their topic-partition."""
    done = pl.lit(False)
    for (r, topic, partition), last in state.cursors.items():
        if r == role:
            done = done | (
                (pl.col(KAFKA_TOPIC) == topic)
                & (pl.col(KAFKA_PARTITION) == partition)
                & (pl.col(KAFKA_OFFSET) <= last)
            )
    return done


def past_cursors(frame: pl.LazyFrame, state: FeatureState, role: str) -> pl.LazyFrame:
    """Rows of ``frame`` past the state's ``role`` cursors (all rows of a new partition);
    the Delta scan skips older files by their offset statistics."""
    return frame.filter(~consumed(state, role))


def _part(frame: pl.DataFrame, name: str) -> pl.DataFrame:
    return frame.with_columns(pl.lit(name).alias("_part"))


def load_state(lake: Lake, fs: FeatureSet) -> FeatureState:
    """The saved state of ``fs`` (empty when there is none yet)."""
    name = feature_state(fs.name)
    if not lake.exists(name):
        return FeatureState()
    table = lake.table(name)
    rows = pl.from_arrow(table.to_pyarrow_table())
    assert isinstance(rows, pl.DataFrame)
    state = FeatureState(version=table.version())

    def part(p: str, cols: list[str]) -> pl.DataFrame:
        got = rows.filter(pl.col("_part") == p)
        return got.select([c for c in cols if c in got.columns]) if got.height else pl.DataFrame()

    for by in {a.by for a in fs.aggregations.values() if a.window is None}:
        cols = [
            c
            for n, a in fs.aggregations.items()
            if a.by == by and a.window is None
            for c in partial_columns(n, a)
        ]
        state.base[by] = part(f"base:{by}", [by, *cols])
    state.events = part("event", [*event_columns(fs), EMITTED])
    state.unlabeled = part("unlabeled", [fs.key, DATE])
    state.labels = part("label", [fs.key, "label", *LABEL_COORDINATES])
    for role, topic, p, o in (
        rows.filter(pl.col("_part") == "cursor")
        .select("_cursor_role", "_cursor_topic", "_cursor_partition", "_cursor_offset")
        .iter_rows()
    ):
        state.cursors[(role, topic, int(p))] = int(o)
    meta = rows.filter(pl.col("_part") == "meta")
    if meta.height:
        state.frontier = meta["_meta_frontier"][0]
        state.newest = meta["_meta_newest"][0]
    return state


def save_state(lake: Lake, fs: FeatureSet, state: FeatureState) -> None:
    """Write ``state`` as the new version of ``feature_state/<name>``, in one commit."""
    parts = [_part(frame, f"base:{by}") for by, frame in state.base.items() if frame.height]
    if state.events.height:
        parts.append(_part(state.events, "event"))
    if state.unlabeled.height:
        parts.append(_part(state.unlabeled, "unlabeled"))
    if state.labels.height:
        parts.append(_part(state.labels, "label"))
    if state.cursors:
        parts.append(
            _part(
                pl.DataFrame(
                    [
                        {
                            "_cursor_role": r,
                            "_cursor_topic": t,
                            "_cursor_partition": p,
                            "_cursor_offset": o,
                        }
                        for (r, t, p), o in sorted(state.cursors.items())
                    ],
                    schema={
                        "_cursor_role": pl.String,
                        "_cursor_topic": pl.String,
                        "_cursor_partition": pl.Int32,
                        "_cursor_offset": pl.Int64,
                    },
                ),
                "cursor",
            )
        )
    utc = pl.Datetime("us", "UTC")
    parts.append(
        _part(
            pl.DataFrame(
                {"_meta_frontier": [state.frontier], "_meta_newest": [state.newest]},
                schema={"_meta_frontier": utc, "_meta_newest": utc},
            ),
            "meta",
        )
    )
    frame = pl.concat(parts, how="diagonal_relaxed")
    write_deltalake(
        lake.uri(feature_state(fs.name)),
        frame.to_arrow(),
        mode="overwrite",
        schema_mode="overwrite",
        storage_options=lake.storage_options,
    )
