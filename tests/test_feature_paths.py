"""Batch == incremental == online, row for row, over random streams (Hypothesis), and the
late-event rule: flagged, listed, restored by a backfill of its day."""

from __future__ import annotations

import dataclasses
import datetime as dt
import tempfile
import uuid

import polars as pl
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import features.incremental
import features.online
from features import (
    LATE,
    FeatureSet,
    OnlineFeatures,
    compute_features,
    differences,
    late_days,
    load_state,
    prior_count,
    prior_distinct,
    prior_last,
    prior_max,
    prior_mean,
    prior_min,
    prior_sum,
    read_features,
    rebuild_state,
    update_features,
)
from features.redis_state import RedisKeyedState
from features.state import FeatureState
from lake import Lake, SilverTable, erase
from lake.names import COORDINATES, DATE, silver
from lake.names import features as features_table

T0 = dt.datetime(2026, 5, 1, 23, 30, tzinfo=dt.UTC)  # streams cross midnight: two days
LATENESS = dt.timedelta(minutes=3)
W = dt.timedelta(minutes=5)
SUBJECT = "events-value"
AGGS = {
    "n_u": prior_count("u"),
    "sum_u": prior_sum("x", "u"),
    "mean_u": prior_mean("x", "u"),
    "min_u": prior_min("x", "u"),
    "max_u": prior_max("x", "u"),
    "last_u": prior_last("x", "u"),
    "distinct_u": prior_distinct("x", "u"),
    "n_r": prior_count("r"),
    "n_r_5m": prior_count("r", window=W),
    "sum_u_5m": prior_sum("x", "u", window=W),
    "mean_r_5m": prior_mean("x", "r", window=W),
    "min_u_5m": prior_min("x", "u", window=W),
    "max_r_5m": prior_max("x", "r", window=W),
    "last_u_5m": prior_last("x", "u", window=W),
    "distinct_r_5m": prior_distinct("x", "r", window=W),
}
FS = FeatureSet(
    name="paths",
    source=silver(SUBJECT),
    key="id",
    event_time="t",
    features={"x2": pl.col("x") * 2, **AGGS},
    label="y",
    allowed_lateness=LATENESS,
)
NAMES = FS.feature_names


def _append(lake: Lake, events: list[dict], offsets: dict[int, int]) -> list[dict]:
    """Land ``events`` in silver in this order; return them with their coordinates."""
    rows = []
    for e in events:
        p = e["p"]
        rows.append({**e, "_kafka_offset": offsets.get(p, 0)})
        offsets[p] = offsets.get(p, 0) + 1
    n = len(rows)
    data = pa.table(
        {
            "id": pa.array([r["id"] for r in rows], pa.int64()),
            "t": pa.array([r["t"] for r in rows], pa.timestamp("us", tz="UTC")),
            "u": pa.array([r["u"] for r in rows], pa.int64()),
            "r": pa.array([r["r"] for r in rows], pa.int64()),
            "x": pa.array([r["x"] for r in rows], pa.float64()),
            "y": pa.array([float(r["id"]) for r in rows], pa.float64()),
            "_kafka_topic": pa.array(["events"] * n),
            "_kafka_partition": pa.array([r["p"] for r in rows], pa.int32()),
            "_kafka_offset": pa.array([r["_kafka_offset"] for r in rows], pa.int64()),
            "_kafka_timestamp": pa.array([r["t"] for r in rows], pa.timestamp("us", tz="UTC")),
            "_schema_id": pa.array([1] * n, pa.int32()),
            "_schema_version": pa.array([1] * n, pa.int32()),
            "_date": pa.array([r["t"].date() for r in rows], pa.date32()),
        }
    )
    SilverTable(lake, SUBJECT).append("events", data)
    return rows


@st.composite
def streams(draw):
    """Events with ties, null keys and values, arriving out of order within the lateness,
    cut at random points into incremental runs."""
    n = draw(st.integers(1, 40))
    events = []
    for i in range(n):
        t = T0 + dt.timedelta(minutes=draw(st.integers(0, 60)))
        jitter = dt.timedelta(minutes=draw(st.integers(0, 3)))  # <= LATENESS
        events.append(
            {
                "id": i,
                "t": t,
                "u": draw(st.sampled_from([1, 2, 3, None])),
                "r": draw(st.sampled_from([10, 20])),
                "x": draw(st.sampled_from([None, 1.0, 2.0, 2.0, 5.0, -3.5])),
                "p": draw(st.integers(0, 1)),
                "_arrive": t + jitter,
            }
        )
    events.sort(key=lambda e: (e["_arrive"], e["id"]))
    cuts = sorted(set([*draw(st.lists(st.integers(1, n), max_size=5)), n]))
    return events, cuts


def _frame(batch: list[dict]) -> pl.DataFrame:
    """Events with coordinates as a scorer receives them (silver-shaped)."""
    return pl.DataFrame(
        {
            "id": [e["id"] for e in batch],
            "t": [e["t"] for e in batch],
            "u": [e["u"] for e in batch],
            "r": [e["r"] for e in batch],
            "x": [e["x"] for e in batch],
            "y": [float(e["id"]) for e in batch],
            "_kafka_topic": ["events"] * len(batch),
            "_kafka_partition": [e["p"] for e in batch],
            "_kafka_offset": [e["_kafka_offset"] for e in batch],
            DATE: [e["t"].date() for e in batch],
        },
        schema_overrides={
            "u": pl.Int64,
            "x": pl.Float64,
            "_kafka_partition": pl.Int32,
            "t": pl.Datetime("us", "UTC"),
        },
    )


def _by_coordinates(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.sort(list(COORDINATES))


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(streams())
def test_batch_equals_incremental_equals_online(monkeypatch_fold, stream):
    events, cuts = stream
    lake = Lake(tempfile.mkdtemp())
    offsets: dict[int, int] = {}
    online = OnlineFeatures(FS)
    landed: list[dict] = []
    online_rows = []
    start = 0
    for cut in cuts:
        batch = _append(lake, events[start:cut], offsets)
        # Online, as a scorer sees this batch: values first, then it joins the state.
        frame = _frame(batch)
        got = online.features(frame)
        for row, e in zip(got.iter_rows(named=True), batch, strict=True):
            # Exact when every earlier event had arrived by then (this batch included).
            seen = [x for x in landed + batch if x["t"] < e["t"]]
            complete = len(seen) == sum(1 for x in events if x["t"] < e["t"])
            online_rows.append((e, row, complete))
        online.observe(frame)
        landed += batch
        update_features(lake, FS)
        start = cut
    update_features(lake, FS, drain=True)
    incremental = _by_coordinates(read_features(lake, FS))
    assert incremental.height == len(events)
    assert not incremental[LATE].any()  # nothing arrived later than the lateness

    batch_fs = dataclasses.replace(FS, name="paths_batch")
    days = sorted({e["t"].date() for e in events})
    compute_features(lake, batch_fs, days[0], days[-1])
    batch = _by_coordinates(read_features(lake, batch_fs))
    assert incremental.select(NAMES).equals(batch.select(NAMES))
    assert incremental.drop(LATE).equals(batch.drop(LATE))

    by_offset = {
        (r["_kafka_partition"], r["_kafka_offset"]): r for r in batch.iter_rows(named=True)
    }
    checked = 0
    for e, row, complete in online_rows:
        if complete:
            want = by_offset[(e["p"], e["_kafka_offset"])]
            assert {k: row[k] for k in NAMES} == {k: want[k] for k in NAMES}, e
            checked += 1
    assert checked >= 1  # the first event's past is always complete

    # The state in the lake answers for events after everything, like the batch path.
    later = pl.DataFrame(
        {
            "id": [1000],
            "t": [T0 + dt.timedelta(hours=2)],
            "u": [1],
            "r": [10],
            "x": [1.0],
            "y": [0.0],
            "_kafka_topic": ["events"],
            "_kafka_partition": [0],
            "_kafka_offset": [10_000],
            DATE: [(T0 + dt.timedelta(hours=2)).date()],
        },
    )
    loaded = OnlineFeatures.load(lake, FS).features(later)
    mine = online.features(later)
    assert loaded.select(NAMES).equals(mine.select(NAMES))


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(streams())
def test_online_state_in_redis_equals_in_memory(monkeypatch_fold, redis_url, stream):
    """Two processes sharing the state through a real Redis answer exactly as one process
    in memory, whichever of them observes, and observing twice adds nothing."""
    events, cuts = stream
    memory = OnlineFeatures(FS)
    shared = RedisKeyedState.from_url(redis_url, f"paths-{uuid.uuid4().hex}", FS.aggregations)
    with shared.seeding() as needed:
        assert needed
        first = OnlineFeatures(FS, FeatureState(), keyed=shared)
    with shared.seeding() as needed:
        assert not needed
    second = OnlineFeatures(FS, keyed=shared)
    offsets: dict[int, int] = {}
    start = 0
    for i, cut in enumerate(cuts):
        batch = []
        for e in events[start:cut]:
            batch.append({**e, "_kafka_offset": offsets.get(e["p"], 0)})
            offsets[e["p"]] = offsets.get(e["p"], 0) + 1
        frame = _frame(batch)
        want = memory.features(frame)
        assert first.features(frame).equals(want)
        assert second.features(frame).equals(want)
        memory.observe(frame)
        observer, again = (first, second) if i % 2 else (second, first)
        assert observer.observe(frame) == len(batch)
        assert again.observe(frame) == 0  # already claimed by the other process
        start = cut
    memory._fold()
    first._fold()
    assert shared.size() == (memory.keys, memory.events_kept)
    assert shared.frontier == memory._keyed.frontier
    shared.clear()


@pytest.fixture
def monkeypatch_fold(monkeypatch):
    """Fold the online state often, so the folding itself is exercised."""
    monkeypatch.setattr(features.online, "_FOLD_EVERY", 3)


def test_state_follows_keys_not_history(lake_root):
    lake = Lake(lake_root)
    offsets: dict[int, int] = {}
    for day in range(3):
        events = [
            {
                "id": day * 200 + i,
                "t": T0 + dt.timedelta(days=day, minutes=i),
                "u": i % 4,
                "r": 10,
                "x": float(i % 7),
                "p": 0,
            }
            for i in range(200)
        ]
        _append(lake, events, offsets)
        update = update_features(lake, FS)
    state = load_state(lake, FS)
    assert update.keys == state.keys() == 4 + 1  # four users, one restaurant
    # Raw events kept: within the lateness and the 5-minute window of the newest only.
    assert state.events.height <= 9


def test_a_late_event_is_flagged_listed_and_restored_by_a_backfill(lake_root):
    lake = Lake(lake_root)
    offsets: dict[int, int] = {}
    on_time = [
        {"id": i, "t": T0 + dt.timedelta(minutes=10 * i), "u": 1, "r": 10, "x": 1.0, "p": 0}
        for i in range(6)
    ]
    _append(lake, on_time, offsets)
    assert update_features(lake, FS).new_rows == 6 - 1  # the newest waits for the lateness
    late = {"id": 99, "t": T0 + dt.timedelta(minutes=5), "u": 1, "r": 10, "x": 7.0, "p": 0}
    _append(lake, [late], offsets)
    run = update_features(lake, FS)
    assert run.late == 1
    rows = read_features(lake, FS)
    flagged = rows.filter(pl.col(LATE))
    assert flagged["id"].to_list() == [99]
    # Rows after it that were emitted before it arrived did not count it...
    assert rows.filter(pl.col("id") == 1)["n_u"].to_list() == [1]
    days = late_days(lake, FS)  # rows after it, on the next day too
    assert days == [T0.date(), T0.date() + dt.timedelta(days=1)]
    assert sorted(d["_kafka_offset"] for d in differences(lake, FS, days[0])) == [1, 2, 6]
    assert sorted(d["_kafka_offset"] for d in differences(lake, FS, days[1])) == [3, 4]
    # ...until the day is backfilled: then every row is exact and none is flagged.
    compute_features(lake, FS, days[0], days[-1])
    exact = read_features(lake, FS)
    assert not exact[LATE].any()
    assert exact.filter(pl.col("id") == 1)["n_u"].to_list() == [2]
    assert exact.filter(pl.col("id") == 99)["n_u"].to_list() == [1]
    assert differences(lake, FS, days[0]) == differences(lake, FS, days[1]) == []


def test_a_feature_that_looks_at_other_rows_is_refused_for_the_incremental_path(lake_root):
    fs = dataclasses.replace(FS, name="bad", features={"c": pl.col("x").cum_sum().over("u")})
    with pytest.raises(ValueError, match=r"looks at other rows[^;]*; declare it as an aggregation"):
        update_features(Lake(lake_root), fs)
    with pytest.raises(ValueError, match="looks at other rows"):
        OnlineFeatures(fs)
    assert not Lake(lake_root).exists(features_table("bad"))


def test_erasing_a_person_removes_their_rows_and_their_part_of_every_aggregate(lake_root):
    lake = Lake(lake_root)
    offsets: dict[int, int] = {}
    events = [
        {"id": i, "t": T0 + dt.timedelta(minutes=i), "u": 1 + i % 2, "r": 10, "x": 1.0, "p": 0}
        for i in range(10)
    ]
    _append(lake, events, offsets)
    update_features(lake, FS, drain=True)
    assert load_state(lake, FS).base["u"]["u"].sort().to_list() == [1, 2]

    erase(lake, where="u = 1")
    rebuild_state(lake, FS)
    state = load_state(lake, FS)
    assert state.base["u"]["u"].to_list() == [2]
    assert state.base["r"]["n_r__n"].to_list() == [5]  # the restaurant counts only user 2's
    assert sorted(read_features(lake, FS)["id"].to_list()) == [1, 3, 5, 7, 9]
    later = pl.DataFrame(
        {
            "id": [100],
            "t": [T0 + dt.timedelta(hours=1)],
            "u": [2],
            "r": [10],
            "x": [1.0],
            "y": [0.0],
            "_kafka_topic": ["events"],
            "_kafka_partition": [0],
            "_kafka_offset": [100],
            DATE: [(T0 + dt.timedelta(hours=1)).date()],
        },
        schema_overrides={"_kafka_partition": pl.Int32},
    )
    row = OnlineFeatures.load(lake, FS).features(later).row(0, named=True)
    assert (row["n_u"], row["n_r"], row["n_r_5m"]) == (5, 5, 0)


def test_a_run_killed_before_its_state_commit_writes_nothing_twice(lake_root, monkeypatch):
    lake = Lake(lake_root)
    offsets: dict[int, int] = {}
    events = [
        {"id": i, "t": T0 + dt.timedelta(minutes=2 * i), "u": i % 3, "r": 10, "x": 1.0, "p": 0}
        for i in range(20)
    ]
    _append(lake, events[:8], offsets)
    update_features(lake, FS)
    _append(lake, events[8:], offsets)

    def killed(*args, **kwargs):
        raise RuntimeError("killed before the state commit")

    monkeypatch.setattr(features.incremental, "save_state", killed)
    with pytest.raises(RuntimeError, match="killed"):
        update_features(lake, FS)  # its feature rows landed, its state did not
    monkeypatch.undo()
    update_features(lake, FS, drain=True)
    rows = _by_coordinates(read_features(lake, FS))
    assert rows["id"].to_list() == list(range(20))  # each row once
    batch_fs = dataclasses.replace(FS, name="killed_batch")
    compute_features(lake, batch_fs, T0.date(), (T0 + dt.timedelta(days=1)).date())
    batch = _by_coordinates(read_features(lake, batch_fs))
    assert rows.select(NAMES).equals(batch.select(NAMES))
