"""``eventlake demo``: the main job, end to end on the embedded default."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess

import dagster as dg
import polars as pl

from lake import Lake
from orchestration.defs import LakeResource, build_definitions
from orchestration.defs.ticks import sensor_cursor, sensor_tick
from orchestration.plots import _hourly_error
from orchestration.settings import Settings
from tests.conftest import CLI


def test_the_demo_runs_the_whole_pipeline_and_leaves_it_for_the_ui(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTLAKE_")}
    env.pop("DAGSTER_HOME", None)
    root = tmp_path / "demo"
    out = subprocess.run(
        [
            *CLI,
            "--log-level",
            "WARNING",
            "demo",
            "--root",
            str(root),
            "--orders",
            "900",
            "--step-minutes",
            "120",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout
    assert "Events sent: order_delivered 900, order_placed 900" in text
    assert "order_placed-value v1..v2" in text  # the app upgraded its schema midway
    assert "silver.order_placed-value              900 rows" in text
    assert "<- champion" in text and "plot: " in text
    assert f"eventlake ui --root {root}" in text
    lake = root / "lake"
    assert (lake / "_reports" / "eta_error.png").stat().st_size > 10_000
    # How far serving lagged learning, measured from the lake: the served figure is the
    # mean |label - prediction| of what was served since the first batch version.
    gap = re.search(
        r"2 h after the drift served ([\d.]+), online learner ([\d.]+) \(([\d.]+)x.*"
        r"could serve \(([\d: -]+)\), served ([\d.]+), online ([\d.]+), batch-only ([\d.]+)",
        text,
    )
    assert gap, text[-2000:]
    served_window, online_window, ratio = map(float, gap.group(1, 2, 3))
    assert abs(served_window / online_window - ratio) < 0.06
    since = dt.datetime.fromisoformat(gap.group(4)).replace(tzinfo=dt.UTC)
    labels = pl.read_delta(str(lake / "features" / "order_eta")).filter(
        pl.col("label").is_not_null()
    )
    served = (
        pl.read_delta(str(lake / "predictions" / "eta"))
        .filter((pl.col("role") == "serving") & (pl.col("event_time") >= since))
        .join(labels, left_on=["input_partition", "input_offset"],
              right_on=["_kafka_partition", "_kafka_offset"])
        .select((pl.col("label") - pl.col("prediction")).abs().mean())
        .item()
    )  # fmt: skip
    assert abs(served - float(gap.group(5))) < 0.006
    # The plot's served line is what was served, per hour; the shadow has its own line.
    hourly = _hourly_error(Lake(str(lake)), "eta")
    assert hourly is not None and set(hourly["role"]) == {"serving", "shadow"}
    by_hour = (
        pl.read_delta(str(lake / "predictions" / "eta"))
        .filter(pl.col("role") == "serving")
        .join(labels, left_on=["input_partition", "input_offset"],
              right_on=["_kafka_partition", "_kafka_offset"])
        .group_by(pl.col("event_time").dt.truncate("1h").alias("hour"))
        .agg((pl.col("label") - pl.col("prediction")).abs().mean().alias("error"))
        .sort("hour")
    )  # fmt: skip
    plotted = hourly.filter(pl.col("role") == "serving").select("hour", "error")
    assert plotted["hour"].to_list() == by_hour["hour"].to_list()
    assert max(abs(a - b) for a, b in zip(plotted["error"], by_hour["error"], strict=True)) < 1e-9
    # The delayed online learner (labels learned as they arrive) is the fair bar.
    delayed = re.search(r"2 h after the drift ([\d.]+) \(served ([\d.]+)x\)", text)
    assert delayed, text[-2000:]
    assert abs(served_window / float(delayed.group(1)) - float(delayed.group(2))) < 0.006
    # What no server can do better on: orders placed before any label after the drift.
    blind = re.search(r"(\d+) of the (\d+) orders served .* served mean there ([\d.]+)", text)
    assert blind, text[-2000:]
    assert 0 < int(blind.group(1)) < int(blind.group(2))
    assert 0 < float(blind.group(3)) < served_window
    predictions = pl.read_delta(str(lake / "predictions" / "eta"))
    serving = predictions.filter(pl.col("role") == "serving")
    assert serving.height == serving.select(pl.struct("input_partition", "input_offset")
                                            .n_unique()).item() == 900  # fmt: skip
    versions = pl.read_delta(str(lake / "models" / "versions"))
    assert set(versions["kind"]) == {"online", "batch"}
    # Serving followed learning: orders were served by many online versions, each of
    # which had learned only labels of orders placed before the order it served (the
    # scorer ran beside ingest and learning; nothing was scored after its label).
    served_by = serving.join(versions.select("version", "kind", "event_time_to"),
                             left_on="model_version", right_on="version")  # fmt: skip
    online = served_by.filter(pl.col("kind") == "online")
    assert online["model_version"].n_unique() >= 8  # a dozen steps of 2 h
    first = versions.filter(pl.col("kind") == "online")["version"].min()
    after_first = online.filter(pl.col("model_version") > first)
    assert after_first.height > 600
    assert (after_first["event_time_to"] < after_first["event_time"]).all()

    # The Dagster instance holds the history the UI shows.
    instance = dg.DagsterInstance.from_config(str(root / "dagster"))
    for key in (
        ["bronze", "order_placed"],
        ["silver", "order_placed-value"],
        ["models", "eta", "online"],
    ):
        event = instance.get_latest_materialization_event(dg.AssetKey(key))
        assert event is not None, key
    runs = instance.get_runs()
    assert runs and all(r.is_success for r in runs)
    # Every run is named for what it does; retraining and the nightly compaction ran as
    # the jobs the sensors or the schedules asked for.
    jobs = {"silver_and_features", "learn_eta", "reprocess_dead_letters", "live_metrics_eta",
            "retrain_eta", "maintenance_job"}  # fmt: skip
    assert jobs <= {r.job_name for r in runs} <= jobs | {"judge_eta"}
    nightly = [r.tags.get("dagster/schedule_name") for r in runs if r.job_name == "maintenance_job"]
    assert nightly and set(nightly) == {"nightly_maintenance"}  # 24 h of history: a 02:30
    # The partitions are the lake's days (through today, which live data would be
    # writing), and each partition's row count is its own.
    settings = Settings(lake_root=str(lake))
    defs = build_definitions(settings)
    partitions = defs.resolve_job_def("silver_and_features").partitions_def
    assert partitions is not None
    silver = pl.read_delta(str(lake / "silver" / "order_placed-value"))
    per_day = dict(silver.group_by("_date").len().sort("_date").iter_rows())
    keys = partitions.get_partition_keys()
    assert keys[: len(per_day)] == [str(d) for d in per_day] and len(keys) - len(per_day) <= 1
    so_far = 0
    for day, rows in per_day.items():
        so_far += rows  # the demo materialized each day once its events were in
        [record] = instance.fetch_materializations(
            dg.AssetRecordsFilter(
                asset_key=dg.AssetKey(["silver", "order_placed-value"]),
                asset_partitions=[str(day)],
            ),
            limit=1,
        ).records
        meta = record.asset_materialization.metadata
        assert (meta["dagster/row_count"].value, meta["table_rows"].value) == (rows, so_far)
    # The drift sensor's cursor is in the instance: the daemon of `eventlake ui` starts
    # nothing.
    resources = {"lake": LakeResource.from_settings(settings)}
    drift = lake / "models" / "drift"
    drifted = drift.exists() and pl.read_delta(str(drift)).height > 0
    assert (sensor_cursor(instance, "drift_eta") is not None) == drifted
    assert sensor_tick(defs, "drift_eta", instance, resources) == []


def test_the_demo_replaces_its_own_folder_and_refuses_a_foreign_one(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTLAKE_")}
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    out = subprocess.run(
        [*CLI, "demo", "--root", str(foreign)], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 2
    assert "is not empty and was not made by `eventlake demo`" in out.stderr
    assert (foreign / "notes.txt").read_text() == "keep me"
