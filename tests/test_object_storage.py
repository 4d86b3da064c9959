"""The lake on object storage: an S3-compatible server on loopback (moto's server mode),
driven by eventlake's own code: ingest with decoding, the catalog, SQL, table info,
coverage, maintenance, erasure, and the command line."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid

import boto3
import pytest

from ingest import Ingester, IngestOptions, Record, produce
from ingest.broker import free_port
from ingest.schema_registry_api import SchemaRegistryServer
from lake import Lake, SchemaStore, decode_coverage, ensure_safe_commits, erase, maintain
from tests.conftest import CLI
from tests.orders_data import orders


@pytest.fixture(scope="module")
def s3():
    """An S3 endpoint on a free loopback port (moto's server, in its own process: delta-rs
    holds the GIL during some requests, so a server thread in this process would stall)
    and the storage options to reach it."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            assert server.poll() is None and time.monotonic() < deadline, "moto did not start"
            time.sleep(0.1)
    url = f"http://127.0.0.1:{port}"
    options = {
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_ALLOW_HTTP": "true",
    }
    client = boto3.client(
        "s3", endpoint_url=url, aws_access_key_id="testing",
        aws_secret_access_key="testing", region_name="us-east-1",
    )  # fmt: skip
    yield client, options
    server.terminate()
    server.wait(10)


def _lake(s3) -> Lake:
    client, options = s3
    bucket = f"lake-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    return Lake(f"s3://{bucket}/lake", storage_options=options)


def test_safe_commits_are_configured_by_eventlake(s3):
    lake = _lake(s3)
    assert lake.storage_options["aws_conditional_put"] == "etag"
    mine = Lake(lake.root, storage_options={**s3[1], "AWS_S3_LOCKING_PROVIDER": "dynamodb"})
    assert "aws_conditional_put" not in mine.storage_options  # a locking provider is set
    # What ingest proves at start: a stale writer's append becomes the next version.
    ensure_safe_commits(lake.root, lake.storage_options)
    bucket = lake.root.split("/")[2]
    left = s3[0].list_objects_v2(Bucket=bucket).get("Contents", [])
    probes = [o["Key"] for o in left if "_eventlake_probe/" in o["Key"]]
    assert probes in ([], ["lake/_eventlake_probe/"])  # the probe table is gone (a folder may stay)


def test_ingest_catalog_sql_maintenance_and_erasure_on_s3(s3, broker, make_topic):
    lake = _lake(s3)
    topic = make_topic(2)
    with SchemaRegistryServer(SchemaStore.open(lake)) as server:
        produce(broker.bootstrap_servers, topic, orders(server.url, topic, range(0, 140)))
    options = IngestOptions(
        bootstrap_servers=broker.bootstrap_servers, topics=(topic,), lake=lake, decode_avro=True,
        batch_max_records=50,
    )  # fmt: skip
    assert Ingester(options).run(until_caught_up=True).records == 140
    assert set(lake.names()) >= {f"bronze.{topic}", f"silver.{topic}-value", "registry.schemas"}
    assert lake.sql(f'SELECT count(*) AS n FROM "silver.{topic}-value"').item() == 140
    assert all(c.ok for c in decode_coverage(lake, topic))
    info = lake.info(f"bronze.{topic}")
    assert info.rows == 140 and info.files >= 3

    report = maintain(lake, f"bronze.{topic}", retention_hours=0)
    assert lake.info(f"bronze.{topic}").files < info.files and report.files_before == info.files

    # Dagster's assets and checks read the same lake through the resource's storage options:
    # the topology is discovered on S3, silver is rebuilt there, every check passes.
    _dagster_on(lake, topic)

    erased = erase(lake, where="user_id = 3")
    assert erased.records == 20
    assert lake.sql(f'SELECT count(*) FROM "silver.{topic}-value" WHERE user_id = 3').item() == 0
    assert lake.scan(f"bronze.{topic}").collect().height == 120
    assert lake.scan("erasures").collect().height == 1


def _dagster_on(lake: Lake, topic: str) -> None:
    import dagster as dg

    from lake.names import value_subject
    from orchestration.defs import build_assets, build_checks
    from orchestration.defs.resources import LakeResource
    from orchestration.defs.topology import Topology
    from orchestration.settings import Settings

    settings = Settings(lake_root=lake.root, storage_options=lake.storage_options)
    topo = Topology.discover([], lake, "topic")
    assert topic in topo.topics  # found by listing the bucket
    day = lake.scan(f"silver.{topic}-value").select("_date").collect().item(0, 0).isoformat()
    result = dg.materialize(
        build_assets(topo, dg.DailyPartitionsDefinition(start_date=day, timezone="UTC"))
        + build_checks(topo),
        selection=[Topology.silver(value_subject(topic))],
        partition_key=day,
        resources={"lake": LakeResource.from_settings(settings)},
    )
    assert result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"schema_compatibility": True, "expectations": True}
    assert lake.sql(f'SELECT count(*) AS n FROM "silver.{topic}-value"').item() == 140


def test_concurrent_writers_lose_nothing_on_s3(s3):
    """Three writers appending to one table at once, each commit by conditional put."""
    import pyarrow as pa
    from deltalake import write_deltalake

    lake = _lake(s3)
    table = lake.open_or_create("silver.t", pa.schema([pa.field("x", pa.int64())]))
    errors: list[Exception] = []

    def writer(w: int) -> None:
        for i in range(5):
            for _ in range(20):
                try:
                    write_deltalake(table.table_uri, pa.table({"x": [w * 100 + i]}), mode="append",
                                    storage_options=lake.storage_options)  # fmt: skip
                    break
                except Exception as e:  # a lost race: retry, as eventlake's writers do
                    if "conflict" not in str(e).lower() and "exists" not in str(e).lower():
                        errors.append(e)
                        return

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    got = sorted(lake.scan("silver.t").collect()["x"].to_list())
    assert got == sorted(w * 100 + i for w in range(3) for i in range(5))


def test_the_command_line_reads_an_s3_lake(s3, broker, make_topic):
    lake = _lake(s3)
    topic = make_topic(1)
    produce(broker.bootstrap_servers, topic, [Record(b"k", b"v")] * 3)
    Ingester(
        IngestOptions(bootstrap_servers=broker.bootstrap_servers, topics=(topic,), lake=lake)
    ).run(until_caught_up=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTLAKE_")}
    env["EVENTLAKE_LAKE_ROOT"] = lake.root
    env["EVENTLAKE_STORAGE_OPTIONS"] = json.dumps(s3[1])
    out = subprocess.run([*CLI, "tables"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert f"bronze.{topic}" in out.stdout
    q = f'SELECT count(*) AS n FROM "bronze.{topic}"'
    out = subprocess.run([*CLI, "sql", q], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "3" in out.stdout


def test_sigkill_at_random_moments_on_s3_keeps_exactly_once(s3, broker, make_topic, processes):
    """Invariant 1 with the lake on S3: ingest killed mid-stream, restarted, every offset
    once (the commit fence is the Delta txn, now on a conditional put)."""
    import random

    from tests.conftest import ingest_env
    from tests.kafka_data import assert_exactly_once, produce_known

    lake = _lake(s3)
    topic = make_topic(3)
    expected = produce_known(broker.bootstrap_servers, topic, 3, 3_000)
    env = ingest_env(broker, lake.root, batch_max_records=300, storage_options=json.dumps(s3[1]))

    def version() -> int:
        return lake.table(f"bronze.{topic}").version() if lake.exists(f"bronze.{topic}") else -1

    rng, kills = random.Random(7), 0
    for attempt in range(8):
        before = version()
        proc = processes.start(
            ["ingest", "--topic", topic, "--until-caught-up"], env, f"r{attempt}"
        )
        deadline = time.monotonic() + 60
        while version() <= before and proc.poll() is None:
            assert time.monotonic() < deadline, processes.log(f"r{attempt}")
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 0.3))
        if proc.poll() is not None:
            break
        proc.send_signal(9)
        proc.wait(10)
        kills += 1
        if kills >= 3:
            break
    assert kills >= 2, processes.log("r0")
    final = processes.start(["ingest", "--topic", topic, "--until-caught-up"], env, "final")
    assert final.wait(180) == 0, processes.log("final")
    rows = lake.table(f"bronze.{topic}").to_pyarrow_table()
    assert_exactly_once(
        rows.sort_by([("partition", "ascending"), ("offset", "ascending")]), expected
    )


def test_two_ingesters_and_two_scorers_on_s3_with_a_kill_and_compaction(s3, broker, processes):
    """Two ingesters and two scorers, each pair in its group, on the S3 lake; one of
    each SIGKILLed once it owns a partition and restarted, more orders sent, bronze
    compacted while they run: every order once in bronze, silver and predictions."""
    import signal

    import polars as pl

    from tests.conftest import ingest_env
    from tests.orders_data import trained_lake

    lake = _lake(s3)
    topic = f"orders-{uuid.uuid4().hex[:8]}"
    _, spec, _ = trained_lake(broker, lake, topic, second=False)  # 400 orders, champion v1
    total = 1_600
    registry = SchemaRegistryServer(SchemaStore.open(lake)).__enter__()
    produce(broker.bootstrap_servers, topic, orders(registry.url, topic, range(400, 1_000)))
    env = ingest_env(
        broker, lake.root, storage_options=json.dumps(s3[1]), decode_avro="true",
        batch_max_records=80, definitions="tests.definitions_orders",
    ) | {"ORDERS_TOPIC_FOR_TESTS": topic}  # fmt: skip
    args = {"ingest": ["ingest", "--topic", topic],
            "score": ["score", "--model", spec.name, "--from-beginning"]}  # fmt: skip
    procs = {f"{k}{i}": processes.start(a, env, f"{k}{i}") for k, a in args.items() for i in "01"}
    logs = {name: name for name in procs}
    bronze, predictions = f"bronze.{topic}", f"predictions.{spec.name}"

    def count(name: str, coordinates: list[str]) -> int:
        if not lake.exists(name):
            return 0
        return lake.scan(name).select(pl.struct(coordinates).n_unique()).collect().item()

    def wait_for(what: str, done) -> None:
        deadline = time.monotonic() + 120
        while not done():
            dead = {n: p.returncode for n, p in procs.items() if p.poll() is not None}
            assert not dead and time.monotonic() < deadline, (what, dead)
            time.sleep(0.1)

    def assigned(name: str) -> bool:
        return "assigned partitions" in processes.log(logs[name])

    wait_for("every process owns a partition", lambda: all(map(assigned, procs)))
    for kind in args:  # one ingester and one scorer killed with work left, restarted
        procs[f"{kind}0"].send_signal(signal.SIGKILL)
        procs[f"{kind}0"].wait(10)
        logs[f"{kind}0"] = f"{kind}0-again"
        procs[f"{kind}0"] = processes.start(args[kind], env, logs[f"{kind}0"])
    # The rest arrives after the kills, however fast the first half went.
    produce(broker.bootstrap_servers, topic, orders(registry.url, topic, range(1_000, total)))
    registry.__exit__(None, None, None)
    maintain(lake, bronze)  # compaction beside the live ingesters
    wait_for("every order, and the restarted processes at work",
             lambda: count(bronze, ["partition", "offset"]) == total
             and count(predictions, ["input_partition", "input_offset"]) == total
             and all(map(assigned, procs)))  # fmt: skip
    for p in procs.values():
        p.send_signal(signal.SIGTERM)
    for name, p in procs.items():
        assert p.wait(30) == 0, processes.log(logs[name])
    assert lake.scan(bronze).collect().height == total
    silver = lake.scan(f"silver.{topic}-value").collect()
    assert silver.height == total and silver["order_id"].n_unique() == total
    assert lake.scan(predictions).collect().height == total  # none scored twice
    assert all(c.ok for c in decode_coverage(lake, topic))
