"""The Dagster definitions against a real lake fed through a real broker, and `dg dev`."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from deltalake import DeltaTable
from playwright.sync_api import Page, expect

from ingest import (
    EmbeddedBroker,
    Ingester,
    IngestOptions,
    SchemaRegistryServer,
    ensure_topic,
    free_port,
    wait_for_broker,
)
from lake import Lake, SchemaStore
from lake.names import value_subject
from orchestration.defs import (
    LakeResource,
    Topology,
    build_assets,
    build_checks,
    build_definitions,
)
from orchestration.defs.automation import build_automation
from orchestration.defs.reports import bronze_reporter
from orchestration.defs.ticks import sensor_cursor, sensor_tick
from orchestration.demo.definitions import DELIVERED_TOPIC, ETA, ORDERS_TOPIC
from orchestration.demo.simulation import EventPublisher, FoodDeliveryWorld
from orchestration.plots import plot_path
from orchestration.settings import Settings
from tests.browser import browser_page, require_chromium
from training.model_registry import ModelRegistry

ROOT = Path(__file__).resolve().parent.parent
DAY1, DAY2 = "2026-11-01", "2026-11-02"
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@pytest.fixture(scope="module")
def fed(tmp_path_factory):
    """A lake with 700 orders of the demo app (two days, schema v1 then v2), ingested and
    decoded, and the instance the ingester reported bronze commits to."""
    tmp = tmp_path_factory.mktemp("dagster")
    lake = str(tmp / "lake")
    instance = dg.DagsterInstance.ephemeral()
    with EmbeddedBroker() as broker:
        bs = broker.bootstrap_servers
        admin = wait_for_broker(bs, wait_s=30)
        for topic in (ORDERS_TOPIC, DELIVERED_TOPIC):
            ensure_topic(admin, topic, bootstrap_servers=bs, create=True, partitions=2)
        world = FoodDeliveryWorld(
            start=dt.datetime(2026, 11, 1, 7, tzinfo=dt.UTC), orders_per_hour=40, upgrade_after=280
        )
        with SchemaRegistryServer(SchemaStore.open(Lake(lake))) as registry:
            app = EventPublisher(bs, registry.url)
            for event in world.events(700):
                app.send(event)
            app.flush()
            del app  # its producer goes before the broker does
        Ingester(  # one ingest process for every topic, reporting each commit
            IngestOptions(
                bootstrap_servers=bs,
                topics=(ORDERS_TOPIC, DELIVERED_TOPIC),
                lake=Lake(lake),
                decode_avro=True,
            ),
            on_commit=bronze_reporter(instance),
        ).run(until_caught_up=True)
    settings = Settings(lake_root=lake, partitions_start=DAY1, holdout_days=0.25)
    yield lake, instance, settings, tmp


def _materialize(settings, instance, keys, **kw):
    topo = Topology([ETA])
    partitions = dg.DailyPartitionsDefinition(start_date=DAY1, timezone="UTC")
    return dg.materialize(
        build_assets(topo, partitions) + build_checks(topo),
        selection=keys,
        instance=instance,
        resources={"lake": LakeResource.from_settings(settings)},
        run_config=QUIET,
        **kw,
    )


def _silver(lake: str, subject: str) -> pl.DataFrame:
    return pl.read_delta(f"{lake}/silver/{subject}").sort("_kafka_partition", "_kafka_offset")


def test_definitions_load_and_describe_every_asset(fed):
    lake, _, settings, _ = fed
    defs = build_definitions(settings)
    graph = defs.resolve_asset_graph()
    keys = sorted(k.to_user_string() for k in graph.get_all_asset_keys())
    assert keys == [
        "bronze/order_delivered",
        "bronze/order_placed",
        "dead_letters",
        "features/order_eta",
        "models/eta/batch",
        "models/eta/champion",
        "models/eta/live_metrics",
        "models/eta/online",
        "predictions/eta",
        "silver/order_delivered-value",
        "silver/order_placed-value",
    ]
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.description and node.group_name and node.kinds, key
    checks = sorted(k.name for k in graph.asset_check_keys)
    assert checks == [
        "champion_not_worse_than_challenger",
        "expectations",
        "expectations",
        "incremental_equals_batch",
        "offset_continuity",
        "offset_continuity",
        "schema_compatibility",
        "schema_compatibility",
        "silver_plus_dead_letters_equal_bronze",
        "silver_plus_dead_letters_equal_bronze",
    ]
    names = {j.name for j in defs.jobs}  # type: ignore[union-attr]
    assert {
        "replay_job",
        "republish_job",
        "erase_job",
        "maintenance_job",
        "release_job",
        "retrain_eta",
    } <= names
    out = subprocess.run(
        [str(Path(sys.executable).parent / "dg"), "check", "defs"],
        cwd=ROOT,
        env={**os.environ, "EVENTLAKE_LAKE_ROOT": lake, "DAGSTER_HOME": str(fed[3])},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "All definitions loaded successfully" in out.stdout + out.stderr


def test_assets_materialize_and_a_backfill_equals_the_stream(fed):
    lake, instance, settings, _ = fed
    assert instance.get_latest_materialization_event(dg.AssetKey(["bronze", ORDERS_TOPIC]))
    streamed = {s: _silver(lake, s) for s in ("order_placed-value", "order_delivered-value")}
    # A decoder bug, say: rows of both days lost from silver.
    DeltaTable(f"{lake}/silver/order_placed-value").delete("order_id % 7 = 0")
    silver_keys = [Topology.silver(value_subject(t)) for t in (ORDERS_TOPIC, DELIVERED_TOPIC)]
    backfill = _materialize(
        settings,
        instance,
        silver_keys,
        tags={
            "dagster/asset_partition_range_start": DAY1,
            "dagster/asset_partition_range_end": DAY2,
        },
    )
    assert backfill.success
    assert len(instance.get_runs()) == 1  # one run for the whole range
    for subject, rows in streamed.items():
        assert _silver(lake, subject).equals(rows), subject
    evaluations = backfill.get_asset_check_evaluations()
    assert evaluations and all(e.passed for e in evaluations), [
        (e.check_name, e.metadata) for e in evaluations if not e.passed
    ]

    features = _materialize(
        settings, instance, [Topology.features(ETA.feature_set)], partition_key=DAY1
    )
    assert features.success
    models = _materialize(
        settings,
        instance,
        [_eta("online"), _eta("batch"), _eta("champion"), Topology.DEAD_LETTERS],
    )
    assert models.success
    online = models.asset_materializations_for_node("models__eta__online")[0].metadata
    assert online["version"].value in (1, 2)  # batch and online may run in either order
    assert online["rows_learned"].value > 400
    assert float(online["MAE"].value) < 10 and online["plot_file"].value.endswith(".png")
    assert "metric_over_event_time" not in online  # no PNG in every event of the log
    champion = models.asset_materializations_for_node("models__eta__champion")[0].metadata
    assert champion["champion"].value in (1, 2)
    assert all(e.passed for e in models.get_asset_check_evaluations())
    assert ModelRegistry(Lake(lake)).alias("eta", "champion") == champion["champion"].value


def _eta(part: str) -> dg.AssetKey:
    return Topology.model(ETA, part)


def test_the_drift_sensor_and_the_schedules(fed):
    lake, instance, settings, tmp = fed
    _, schedules, sensors = build_automation(Topology([ETA]))
    sensor = next(s for s in sensors if s.name == "drift_eta")
    resources = {"lake": LakeResource.from_settings(settings)}
    ctx = dg.build_sensor_context(instance=instance, resources=resources)
    assert not sensor.evaluate_tick(ctx).run_requests  # no drift recorded yet
    models = ModelRegistry(Lake(lake))

    def drift_at(version: int) -> None:
        when = dt.datetime(2026, 11, 2, 3, tzinfo=dt.UTC)
        models.record_drift(
            [
                {
                    "name": "eta",
                    "version": version,
                    "event_time": when,
                    "detector": "ADWIN",
                    "statistic": 12.5,
                    "rows_seen": 500,
                }
            ]
        )

    # A drift some batch version came after is handled, whatever the cursor says.
    drift_at(models.next_version("eta") - 1)
    models.register("eta", "batch", model=None)
    fresh = dg.build_sensor_context(instance=instance, resources=resources)
    assert not sensor.evaluate_tick(fresh).run_requests
    drift_at(7)
    tick = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, resources=resources))
    assert [r.run_key for r in tick.run_requests] == ["drift-eta-v7"]
    assert tick.cursor == "7"
    again = dg.build_sensor_context(instance=instance, resources=resources, cursor="7")
    assert not sensor.evaluate_tick(again).run_requests  # the same drift retrains once

    # Ticked as the daemon would, the cursor lives in the instance (one with storage).
    defs = build_definitions(settings)
    (tmp / "ticks").mkdir(exist_ok=True)
    stored = dg.DagsterInstance.local_temp(str(tmp / "ticks"))
    assert sensor_cursor(stored, "drift_eta") is None
    assert [r.run_key for r in sensor_tick(defs, "drift_eta", stored, resources)] == [
        "drift-eta-v7"
    ]
    assert sensor_cursor(stored, "drift_eta") == "7"
    assert sensor_tick(defs, "drift_eta", stored, resources) == []

    by_name = {s.name: s for s in schedules}
    assert set(by_name) == {"nightly_maintenance", "retrain_eta_daily"}
    when = dt.datetime(2026, 11, 3, 3, tzinfo=dt.UTC)
    for schedule in by_name.values():
        requests = schedule.evaluate_tick(
            dg.build_schedule_context(
                instance=instance, scheduled_execution_time=when, resources=resources
            )
        ).run_requests
        assert len(requests) == 1, schedule.name

    # With no labeled row before the holdout, neither asks for a retrain that would fail:
    # they skip, saying why, and the drift sensor's cursor stays for when there is data.
    early = {"lake": LakeResource.from_settings(settings.model_copy(update={
        "holdout_days": 400.0, "retrain_window_days": 1.0}))}  # fmt: skip
    nothing = by_name["retrain_eta_daily"].evaluate_tick(
        dg.build_schedule_context(instance=instance, scheduled_execution_time=when, resources=early)
    )
    assert not nothing.run_requests
    assert nothing.skip_message.startswith("nothing to retrain on yet: no labeled rows of")
    skipped = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, resources=early))
    assert not skipped.run_requests and skipped.cursor is None
    assert "widen window_days or shrink holdout_days" in skipped.skip_message


def _graphql(port: int, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", body, {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        out = json.loads(r.read())
    assert "errors" not in out, out
    return out["data"]


SENSOR_STATE = """query($s: SensorSelector!) { sensorOrError(sensorSelector: $s) {
  ... on Sensor { sensorState { status typeSpecificData {
    ... on SensorData { lastCursor } } } } } }"""
DRIFT_SENSOR = {
    "repositoryLocationName": "eventlake",
    "repositoryName": "__repository__",
    "sensorName": "drift_eta",
}
EAGER_SENSOR = DRIFT_SENSOR | {"sensorName": "eager_automation"}


def _ui_pages_and_a_backfill(page: Page, url: str, lake: str) -> str:
    """In a real browser: the asset graph, the online model's page with its plot, and a
    two-day backfill of silver launched from the asset's Materialize dialog. Returns
    the backfill's id."""
    page.goto(f"{url}/asset-groups")
    graph = page.get_by_text("Global asset lineage")
    expect(graph).to_be_visible()
    for group in ("bronze", "silver", "features", "models", "serving"):
        expect(page.get_by_role("button", name=group).first).to_be_visible()
    page.goto(f"{url}/assets/models/eta/online")
    plot = page.get_by_role("img", name="MAE over event time")  # in the description
    expect(plot).to_be_visible()
    assert (plot.bounding_box() or {}).get("width", 0) > 500  # inline, not behind a link
    page.goto(f"{url}/assets/bronze/order_placed?view=checks")
    expect(page.get_by_text("Not evaluated").first).to_be_visible()  # never run: not green
    page.goto(f"{url}/assets/silver/order_delivered-value")
    page.get_by_role("button", name="Materialize…").click()
    days = page.get_by_placeholder("No matching partitions")
    days.fill(f"[{DAY1}...{DAY2}]")
    days.press("Enter")
    expect(page.get_by_role("dialog").get_by_text("2 partitions")).to_be_visible()
    page.get_by_role("button", name="Launch backfill").click()
    toast = page.get_by_text("Created backfill")
    expect(toast).to_be_visible()
    return toast.inner_text().split()[-1]


def test_dg_dev_serves_the_graph_and_runs_a_partition_backfill(fed, postgres, monkeypatch):
    """`dg dev` (webserver and the real dagster-daemon) on deploy/dagster/dagster.yaml,
    its instance on PostgreSQL: in a real browser, the asset graph, the online model's
    plot, and a two-day backfill launched from the UI that succeeds; the daemon's sensor
    loop launches the retrain on drift by itself."""
    require_chromium()
    lake, _, _, tmp = fed
    assert os.path.exists(plot_path(Lake(lake), "eta")), "the online model has a plot"
    home = tmp / "dg-home"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text((ROOT / "deploy/dagster/dagster.yaml").read_text())
    monkeypatch.setenv("DAGSTER_PG_URL", postgres)
    instance = dg.DagsterInstance.from_config(str(home))
    # The online learner detects a drift: the daemon, not the test, acts on it.
    models = ModelRegistry(Lake(lake))
    drifted = models.next_version("eta") + 50
    models.record_drift([{"name": "eta", "version": drifted, "detector": "ADWIN",
                          "event_time": dt.datetime(2026, 11, 2, 4, tzinfo=dt.UTC),
                          "statistic": 9.0, "rows_seen": 600}])  # fmt: skip
    batches = models.versions("eta").filter(pl.col("kind") == "batch").height
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTLAKE_")}
    env |= {
        "EVENTLAKE_LAKE_ROOT": lake,
        "EVENTLAKE_PARTITIONS_START": DAY1,
        "EVENTLAKE_HOLDOUT_DAYS": "0.25",
        "DAGSTER_HOME": str(home),
    }
    log = open(tmp / "dg-dev.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "dg"),
            "dev",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (tmp / "dg-dev.log").read_text()[-3000:]
            try:
                nodes = _graphql(port, "{ assetNodes { assetKey { path } } }")["assetNodes"]
                if nodes:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "dg dev did not serve its GraphQL API in 120 s"
            time.sleep(1)
        paths = {"/".join(n["assetKey"]["path"]) for n in nodes}
        assert {"bronze/order_placed", "silver/order_placed-value", "models/eta/online"} <= paths
        sensor = _graphql(port, SENSOR_STATE, {"s": DRIFT_SENSOR})["sensorOrError"]["sensorState"]
        assert sensor["status"] == "RUNNING"
        # The eager automation is on by default; stopped here so that the runs this test
        # waits for are not queued behind the ones it would launch after the backfill.
        eager = _graphql(port, SENSOR_STATE.replace("status", "id status"), {"s": EAGER_SENSOR})
        state = eager["sensorOrError"]["sensorState"]
        assert state["status"] == "RUNNING"
        stopped = _graphql(
            port,
            """mutation($id: String!) { stopSensor(id: $id) { __typename
                 ... on StopSensorMutationResult { instigationState { status } } } }""",
            {"id": state["id"]},
        )["stopSensor"]
        assert stopped["instigationState"]["status"] == "STOPPED", stopped

        with browser_page() as page:
            backfill = _ui_pages_and_a_backfill(page, f"http://127.0.0.1:{port}", lake)
        # The backfill's run (one for the range: BackfillPolicy.single_run) succeeds and
        # materializes both days. Not waiting for the backfill's own COMPLETED: the
        # daemon marks it on its next 30 s loop, after the run.
        done = (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE)
        filled: list = []
        while not filled or filled[0].status not in done:
            assert time.monotonic() < deadline + 180, f"backfill {backfill}: runs {filled}"
            time.sleep(1)
            filled = instance.get_runs(dg.RunsFilter(tags={"dagster/backfill": backfill}))
        [fill] = filled
        assert fill.status == dg.DagsterRunStatus.SUCCESS, (tmp / "dg-dev.log").read_text()[-3000:]
        days = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(["silver", "order_delivered-value"]),
                                  asset_partitions=[DAY1, DAY2]),
            limit=100,
        ).records  # fmt: skip
        assert {r.partition_key for r in days if r.run_id == fill.run_id} == {DAY1, DAY2}
        runs: list = []
        while not runs or runs[0].status not in done:
            assert time.monotonic() < deadline + 240, f"no finished retrain run: {runs}"
            time.sleep(1)
            runs = instance.get_runs(dg.RunsFilter(tags={"dagster/sensor_name": "drift_eta"}))
        [run] = runs
        assert (run.job_name, run.tags["dagster/run_key"]) == (
            "retrain_eta",
            f"drift-eta-v{drifted}",
        )
        assert run.status == dg.DagsterRunStatus.SUCCESS, (tmp / "dg-dev.log").read_text()[-3000:]
        assert models.versions("eta").filter(pl.col("kind") == "batch").height == batches + 1
        assert sensor_cursor(instance, "drift_eta") == str(drifted)  # kept in PostgreSQL
        shown = _graphql(port, SENSOR_STATE, {"s": DRIFT_SENSOR})["sensorOrError"]["sensorState"]
        assert shown["typeSpecificData"]["lastCursor"] == str(drifted)  # and in the UI
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    finally:
        instance.dispose()
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        log.close()
    assert proc.returncode is not None


def test_operator_jobs_run_with_typed_config(fed):
    lake, instance, settings, _ = fed
    defs = build_definitions(settings)
    before = _silver(lake, "order_placed-value")
    replay = defs.resolve_job_def("replay_job").execute_in_process(
        run_config={
            **QUIET,
            "ops": {
                "replay_silver_op": {
                    "config": {"subject": "order_placed-value", "start": DAY1, "end": DAY2}
                }
            },
        },
        instance=instance,
    )
    assert replay.success and _silver(lake, "order_placed-value").equals(before)
    maintenance = defs.resolve_job_def("maintenance_job").execute_in_process(
        run_config={**QUIET, "ops": {"maintain_op": {"config": {"vacuum": False}}}},
        instance=instance,
    )
    assert maintenance.success
    assert len(DeltaTable(f"{lake}/bronze/{ORDERS_TOPIC}").file_uris()) <= 2  # one per day
    erase = defs.resolve_job_def("erase_job").execute_in_process(
        run_config={**QUIET, "ops": {"erase_op": {"config": {"where": "order_id = 3"}}}},
        instance=instance,
    )
    assert erase.success
    assert _silver(lake, "order_placed-value").filter(pl.col("order_id") == 3).is_empty()

    registry = ModelRegistry(Lake(lake))
    for _ in range(2):
        registry.register("rel", "batch", model=None)

    def release(**config: object) -> bool:
        return (
            defs.resolve_job_def("release_job")
            .execute_in_process(
                run_config={**QUIET, "ops": {"release_op": {"config": {"model": "rel", **config}}}},
                instance=instance,
            )
            .success
        )

    assert release(action="promote", version=1, by="ana")
    assert release(action="launch", mode="canary", version=2, fraction=0.2, reason="try v2")
    current = registry.launch("rel")
    assert (current.mode, current.challenger, current.fraction) == ("canary", 2, 0.2)
    assert "(dagster run " in current.by and current.reason == "try v2"
    assert release(action="promote", version=2)
    assert registry.launch("rel").mode == "none"  # promoting the challenger ends its launch
    assert release(action="rollback", reason="latency")
    assert registry.alias("rel", "champion") == 1
    assert registry.alias_history("rel")["reason"].to_list() == [
        "promoted", "promoted", "latency"
    ]  # fmt: skip
    with pytest.raises(dg.DagsterInvalidConfigError, match="action"):
        release(action="deploy")
    with pytest.raises(dg.DagsterInvalidConfigError, match="subject"):
        defs.resolve_job_def("replay_job").execute_in_process(
            run_config={"ops": {"replay_silver_op": {"config": {"start": DAY1, "end": DAY2}}}},
            instance=instance,
        )
