"""Operating the lake: catalog, SQL, time travel, maintenance next to ingest, erasure."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import time

import polars as pl
import pyarrow as pa
import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from deltalake import DeltaTable, write_deltalake

from ingest import Ingester, IngestOptions, Record, produce
from ingest.schema_registry_api import SchemaRegistryServer
from lake import Lake, SchemaStore, TableNotInLake, decode_coverage
from lake.erasure import erase
from lake.maintenance import maintain
from tests.conftest import CLI, bronze, ingest_env, ingest_until_caught_up
from tests.kafka_data import assert_exactly_once, produce_known

USER = json.dumps(
    {
        "type": "record",
        "name": "Click",
        "fields": [{"name": "user_id", "type": "long"}, {"name": "page", "type": "string"}],
    }
)


@pytest.fixture
def clicks(broker, make_topic, lake_root):
    """200 Avro clicks of users 0..9 (key = user id) over 2 partitions, decoded into silver."""
    topic = make_topic(2)
    registry = SchemaStore.open(Lake(lake_root))
    with SchemaRegistryServer(registry) as server:
        ser = AvroSerializer(SchemaRegistryClient({"url": server.url}), USER)
        ctx = SerializationContext(topic, MessageField.VALUE)
        records = [
            Record(
                str(i % 10).encode(), ser({"user_id": i % 10, "page": f"/p{i}"}, ctx), None, i % 2
            )
            for i in range(200)
        ]
    records.append(Record(b"7", b"not avro", None, 0))  # a dead letter of user 7
    produce(broker.bootstrap_servers, topic, records)
    ingest_until_caught_up(broker, topic, lake_root)
    return topic


def _cli(broker, lake_root, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        env=ingest_env(broker, lake_root),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_tables_sql_and_time_travel(broker, clicks, lake_root, tmp_path):
    topic = clicks
    lake = Lake(lake_root)
    assert lake.names() == [
        f"bronze.{topic}",
        "dead_letters",
        "registry.config",
        "registry.schemas",
        f"silver.{topic}-value",
    ]
    info = lake.info(f"silver/{topic}-value")
    assert info.rows == 200 and info.files >= 1 and "user_id int64" in info.schema

    out = _cli(broker, lake_root, "tables")
    assert out.returncode == 0, out.stderr
    assert f"bronze.{topic}" in out.stdout and "201" in out.stdout

    query = (
        f'SELECT user_id, count(*) AS n FROM "silver.{topic}-value" '
        "GROUP BY user_id ORDER BY user_id"
    )
    assert lake.sql(query)["n"].to_list() == [20] * 10
    csv = tmp_path / "clicks.csv"
    out = _cli(broker, lake_root, "sql", query, "-o", str(csv))
    assert out.returncode == 0, out.stderr
    assert pl.read_csv(csv).shape == (10, 2)
    out = _cli(broker, lake_root, "sql", "SELECT nope FROM dead_letters")
    assert out.returncode == 1 and "the query failed" in out.stderr

    # Time travel: the table as it was before a later write.
    silver = DeltaTable(f"{lake_root}/silver/{topic}-value")
    before_version = silver.version()
    time.sleep(0.05)
    before = dt.datetime.now(dt.UTC)
    time.sleep(0.05)
    silver.delete("user_id = 3")
    assert lake.scan(f"silver.{topic}-value").collect().height == 180
    assert lake.scan(f"silver.{topic}-value", version=before_version).collect().height == 200
    assert lake.scan(f"silver.{topic}-value", as_of=before).collect().height == 200
    count = f'SELECT count(*) AS n FROM "silver.{topic}-value"'
    assert lake.sql(count, as_of=before).item() == 200
    out = _cli(broker, lake_root, "sql", count, "--as-of", before.isoformat())
    assert out.returncode == 0 and "200" in out.stdout
    with pytest.raises(TableNotInLake, match="as of 2000"):
        lake.scan(f"silver.{topic}-value", as_of="2000-01-01T00:00:00")


def test_compaction_next_to_a_running_ingest_keeps_exactly_once(
    broker, make_topic, lake_root, processes
):
    topic = make_topic(2)
    expected = produce_known(broker.bootstrap_servers, topic, 2, 10_000)
    env = ingest_env(broker, lake_root, batch_max_records=200, maintain_every=0)
    proc = processes.start(["ingest", "--topic", topic, "--until-caught-up"], env, "ingest")
    uri = f"{lake_root}/bronze/{topic}"
    rounds = 0
    while proc.poll() is None:
        if DeltaTable.is_deltatable(uri):
            maintain(Lake(lake_root), f"bronze.{topic}", vacuum=False)
            rounds += 1
        time.sleep(0.05)
    assert proc.returncode == 0, processes.log("ingest")
    assert rounds >= 3
    assert_exactly_once(bronze(lake_root, topic), expected)
    ops = [h["operation"] for h in DeltaTable(uri).history()]
    assert ops.count("WRITE") >= 50 and "OPTIMIZE" in ops
    report = maintain(Lake(lake_root), f"bronze.{topic}")
    assert report.files_after == 1  # one date partition, one file
    assert_exactly_once(bronze(lake_root, topic), expected)


def test_the_ingester_compacts_by_policy_and_maintain_on_demand(broker, make_topic, lake_root):
    topic = make_topic(1)
    produce_known(broker.bootstrap_servers, topic, 1, 3_000)
    Ingester(
        IngestOptions(
            bootstrap_servers=broker.bootstrap_servers,
            topics=(topic,),
            lake=Lake(lake_root),
            batch_max_records=100,
            maintain_every=10,
        )
    ).run(until_caught_up=True)
    ops = [h["operation"] for h in DeltaTable(f"{lake_root}/bronze/{topic}").history()]
    assert ops.count("WRITE") == 30 and ops.count("OPTIMIZE") >= 1
    out = _cli(broker, lake_root, "maintain", "--table", f"bronze/{topic}")
    assert out.returncode == 0, out.stderr
    assert f"bronze/{topic}: " in out.stdout and "-> 1 files" in out.stdout


def test_erasure_removes_a_user_everywhere_for_good(broker, clicks, lake_root):
    topic = clicks
    silver_uri = f"{lake_root}/silver/{topic}-value"
    bronze_uri = f"{lake_root}/bronze/{topic}"
    old_version = DeltaTable(silver_uri).version()
    # Two model versions, one trained on partition 0 offsets 0..49 (includes user 4).
    write_deltalake(
        f"{lake_root}/models/versions",
        pa.table(
            {
                "name": ["eta", "eta"],
                "version": [1, 2],
                "lineage_offsets": [
                    json.dumps({topic: {"0": [0, 49]}}),
                    json.dumps({"other-topic": {"0": [0, 10_000]}}),
                ],
            }
        ),
    )
    out = _cli(broker, lake_root, "erase", "--where", "user_id = 4", "--models", "list", "--yes")
    assert out.returncode == 0, out.stderr
    assert "erased 20 records matching user_id = 4" in out.stdout
    assert "eta:1" in out.stdout and "eta:2" not in out.stdout
    lake = Lake(lake_root)
    assert lake.sql(f'SELECT count(*) FROM "silver.{topic}-value" WHERE user_id = 4').item() == 0
    assert lake.scan(f"silver.{topic}-value").collect().height == 180
    assert lake.scan(f"bronze.{topic}").filter(pl.col("key") == b"4").collect().height == 0
    assert lake.scan(f"bronze.{topic}").collect().height == 181
    # No old version can bring them back: their files are vacuumed.
    with pytest.raises(Exception):  # noqa: B017 - delta-rs: the old version's files are gone
        DeltaTable(silver_uri, version=old_version).to_pyarrow_table()
    audit = lake.scan("erasures").collect().row(0, named=True)
    assert audit["predicate"] == "user_id = 4" and audit["records"] == 20
    assert json.loads(audit["rows_by_table"]) == {
        f"bronze.{topic}": 20,
        f"silver.{topic}-value": 20,
    }
    assert json.loads(audit["models_to_retrain"]) == ["eta:1"]
    assert all(c.ok for c in decode_coverage(Lake(lake_root), topic))

    # By key: user 7's clicks and the dead letter that carried the key.
    report = erase(Lake(lake_root), key=b"7")
    assert report.records == 21
    assert report.rows_by_table == {
        f"bronze.{topic}": 21,
        "dead_letters": 1,
        f"silver.{topic}-value": 20,
    }
    # A restart of ingest does not bring erased offsets back from Kafka.
    Ingester(
        IngestOptions(
            bootstrap_servers=broker.bootstrap_servers, topics=(topic,), lake=Lake(lake_root)
        )
    ).run(until_caught_up=True)
    assert DeltaTable(bronze_uri).to_pyarrow_table().num_rows == 160


def test_erasure_needs_a_known_column(clicks, lake_root):
    from lake.erasure import ErasureError

    with pytest.raises(ErasureError, match="no silver table has the columns"):
        erase(Lake(lake_root), where="ssn = '1'")
