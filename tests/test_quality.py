"""Expectations through the real pipeline: `eventlake ingest` judges each silver batch,
failing records become dead letters of kind `expectation` (reprocessed once the
expectation is fixed), results land in `quality`, Prometheus counts them, and the
Dagster check and a silver rebuild agree with live ingest."""

from __future__ import annotations

import json
import subprocess

import dagster as dg
import polars as pl

from ingest import Ingester, IngestMetrics, IngestOptions, produce
from ingest.schema_registry_api import SchemaRegistryServer
from lake import Lake, SchemaStore, read_quality
from lake.names import value_subject
from orchestration.defs import build_assets, build_checks
from orchestration.defs.resources import LakeResource
from orchestration.defs.topology import Topology
from orchestration.settings import Settings
from tests.conftest import CLI, ingest_env
from tests.orders_data import orders

EXPECTATIONS = [
    {"name": "km_range", "check": "between", "column": "distance_km", "min": 0, "max": 8},
    {"name": "one_order", "check": "unique", "column": "order_id", "within_s": 3600},
    {"name": "few_users", "check": "one_of", "column": "user_id", "values": [0, 1, 2, 3, 4, 5],
     "severity": "warn"},
]  # fmt: skip


def _toml(subject: str, expectations: list[dict]) -> str:
    lines = []
    for e in expectations:
        lines.append(f'[[expectations."{subject}"]]')
        lines += [f"{k} = {json.dumps(v)}" for k, v in e.items()]
    return "\n".join(lines)


def _produce(bs: str, registry_url: str, topic: str, ids: range) -> None:
    produce(bs, topic, orders(registry_url, topic, ids))


def test_expectations_route_count_and_reprocess(broker, make_topic, lake_root, tmp_path):
    topic = make_topic(2, "q")
    subject = value_subject(topic)
    with SchemaRegistryServer(SchemaStore.open(Lake(lake_root))) as registry:
        # orders 0..299: distance i % 9 + 0.5 (8.5 for every ninth: 33 out of range),
        # then orders 0..9 again (duplicates within the hour)
        _produce(broker.bootstrap_servers, registry.url, topic, range(300))
        _produce(broker.bootstrap_servers, registry.url, topic, range(10))
    config = tmp_path / "eventlake.toml"
    config.write_text(_toml(subject, EXPECTATIONS))
    env = {**ingest_env(broker, lake_root, decode_avro="true"), "EVENTLAKE_CONFIG": str(config)}
    run = subprocess.run(
        [*CLI, "ingest", "--topic", topic, "--until-caught-up"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]

    silver = pl.read_delta(f"{lake_root}/silver/{subject}")
    dead = pl.read_delta(f"{lake_root}/dead_letters").filter(pl.col("topic") == topic)
    out_of_range = {i for i in range(300) if i % 9 == 8}  # 33 orders of 8.5 km
    assert silver.height == 300 - 33
    assert set(silver["order_id"]) == set(range(300)) - out_of_range
    assert dead.height == 33 + 10  # and every second copy of orders 0..9
    assert set(dead["error_kind"]) == {"expectation"}
    messages = dead["error_message"].to_list()
    km = "expectation 'km_range' failed: distance_km between 0 and 8 (value 8.5)"
    assert sum(m == km for m in messages) == 34  # order 8's second copy fails this first
    assert sum(m.startswith("expectation 'one_order' failed") for m in messages) == 9

    quality = pl.DataFrame(read_quality(Lake(lake_root), subject=subject))
    totals = {
        r["expectation"]: (r["records"], r["failed"], r["severity"])
        for r in quality.group_by("expectation", "severity")
        .agg(pl.col("records", "failed").sum())
        .iter_rows(named=True)
    }
    users_over_5 = sum(1 for i in [*range(300), *range(10)] if i % 7 == 6)
    assert totals == {
        "km_range": (310, 34, "error"),  # order 8 is out of range in both copies
        "one_order": (310, 10, "error"),
        "few_users": (310, users_over_5, "warn"),
    }

    # The Dagster check reports it, and rebuilding silver from bronze (the silver
    # asset, backfilled) keeps exactly what live ingest kept.
    settings = Settings(lake_root=lake_root, expectations={subject: EXPECTATIONS})
    topo = Topology([], topics=[topic])
    day = silver["_date"][0].isoformat()
    result = dg.materialize(
        build_assets(topo, dg.DailyPartitionsDefinition(start_date=day, timezone="UTC"))
        + build_checks(topo),
        selection=[Topology.silver(subject)],
        partition_key=day,
        resources={"lake": LakeResource.from_settings(settings)},
    )
    assert result.success
    rebuilt = pl.read_delta(f"{lake_root}/silver/{subject}")
    assert rebuilt.sort("order_id").equals(silver.sort("order_id"))
    [check] = [e for e in result.get_asset_check_evaluations() if e.check_name == "expectations"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert check.metadata["records_judged"].value == 310
    assert check.metadata["failed_records"].value == 34 + 10 + users_over_5

    # The producer was right after all: distances up to 9 km are fine.
    config.write_text(_toml(subject, [{**EXPECTATIONS[0], "max": 9}, *EXPECTATIONS[1:]]))
    again = subprocess.run(
        [*CLI, "dead-letters", "reprocess", "--topic", topic],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert "moved 33 dead letters" in again.stdout
    silver = pl.read_delta(f"{lake_root}/silver/{subject}")
    assert silver.height == 300 and set(silver["order_id"]) == set(range(300))
    left = pl.read_delta(f"{lake_root}/dead_letters").filter(pl.col("topic") == topic)
    assert left.height == 10  # the second copies are still duplicates of what silver holds


def test_prometheus_counts_each_expectation(broker, make_topic, lake_root):
    topic = make_topic(2, "m")
    subject = value_subject(topic)
    with SchemaRegistryServer(SchemaStore.open(Lake(lake_root))) as registry:
        _produce(broker.bootstrap_servers, registry.url, topic, range(90))
    metrics = IngestMetrics()
    settings = Settings(lake_root=lake_root, expectations={subject: EXPECTATIONS[:1]})
    Ingester(
        IngestOptions(
            bootstrap_servers=broker.bootstrap_servers,
            topics=(topic,),
            lake=Lake(lake_root),
            decode_avro=True,
            expectations=settings.declared_expectations(),
        ),
        metrics=metrics,
    ).run(until_caught_up=True)
    labels = {"subject": subject, "expectation": "km_range"}
    sample = metrics.registry.get_sample_value
    assert sample("eventlake_quality_records_total", labels) == 90
    assert sample("eventlake_quality_failed_total", {**labels, "severity": "error"}) == 10
