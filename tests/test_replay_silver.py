"""Rebuilding silver from bronze gives what the streaming path wrote (invariant 4)."""

from __future__ import annotations

import datetime as dt
import subprocess

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from deltalake import DeltaTable

from ingest import Record, ReplayError, produce
from ingest.rebuild import rebuild_silver
from ingest.schema_registry_api import SchemaRegistryServer
from ingest.schema_resolver import SchemaResolver
from lake import Lake, SchemaStore
from lake.coverage import decode_coverage
from lake.dead_letters import DeadLetters
from lake.silver import SilverTable
from tests.conftest import CLI, ingest_env, ingest_until_caught_up
from tests.test_schema_evolution import V1, V2, V3, _serialize

DAY1 = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
DAY2 = DAY1 + dt.timedelta(days=1)


def _ms(when: dt.datetime, i: int) -> int:
    return int(when.timestamp() * 1000) + i


@pytest.fixture
def streamed(broker, make_topic, lake_root):
    """A topic over two days, schema v1 then v2, and some dead letters, ingested with decoding."""
    topic = make_topic(2)
    registry = SchemaStore.open(Lake(lake_root))
    with SchemaRegistryServer(registry) as server:
        client = SchemaRegistryClient({"url": server.url})
        v1 = _serialize(
            client,
            V1,
            topic,
            [
                {"order_id": i, "kind": "PICKUP", "coupon": None if i % 2 else "X"}
                for i in range(60)
            ],
        )
        v2 = _serialize(
            client,
            V2,
            topic,
            [
                {"order_id": 100 + i, "kind": "DRONE", "coupon": None, "tip": i / 4}
                for i in range(60)
            ],
        )
    records = [r._replace(partition=i % 2, timestamp_ms=_ms(DAY1, i)) for i, r in enumerate(v1)] + [
        r._replace(partition=i % 2, timestamp_ms=_ms(DAY2, i)) for i, r in enumerate(v2)
    ]
    records.insert(10, Record(b"k", None, None, 0, _ms(DAY1, 99)))  # tombstone
    records.insert(90, Record(None, b"garbage", None, 1, _ms(DAY2, 99)))  # not framed
    produce(broker.bootstrap_servers, topic, records)
    ingest_until_caught_up(broker, topic, lake_root)
    return topic, registry


def _silver(lake_root: str, topic: str) -> pa.Table:
    return SilverTable(Lake(lake_root), f"{topic}-value").read()


def _dead(lake_root: str, topic: str) -> pa.Table:
    return DeadLetters.open(Lake(lake_root)).read(topic).drop_columns(["quarantined_at"])


def test_a_rebuild_equals_the_stream_and_a_second_run_changes_nothing(streamed, lake_root):
    topic, registry = streamed
    stream_silver, stream_dead = _silver(lake_root, topic), _dead(lake_root, topic)
    assert stream_silver.num_rows == 120
    assert stream_dead.column("error_kind").to_pylist() == ["tombstone", "not_confluent_framed"]
    # A decoder bug, say: wrong values in silver and a lost dead letter.
    silver_dt = DeltaTable(f"{lake_root}/silver/{topic}-value")
    silver_dt.update(updates={"coupon": "'BUG'"}, predicate="order_id < 10")
    silver_dt.delete("order_id >= 150")
    DeadLetters.open(Lake(lake_root)).delta.delete("error_kind = 'tombstone'")

    summary = rebuild_silver(Lake(lake_root), topic, SchemaResolver(registry))
    assert summary.records == 122 and summary.days == 2
    assert summary.rewritten == {f"silver.{topic}-value": 2, "dead_letters": 1}
    assert _silver(lake_root, topic).equals(stream_silver)
    assert _dead(lake_root, topic).equals(stream_dead)
    assert all(c.ok for c in decode_coverage(Lake(lake_root), topic))

    silver_dt.update_incremental()
    versions = (silver_dt.version(), DeadLetters.open(Lake(lake_root)).delta.version())
    again = rebuild_silver(Lake(lake_root), topic, SchemaResolver(registry))
    assert again.rewritten == {}
    silver_dt.update_incremental()
    assert (silver_dt.version(), DeadLetters.open(Lake(lake_root)).delta.version()) == versions


def test_rebuilding_one_day_leaves_the_other_untouched(streamed, lake_root, broker):
    topic, _ = streamed
    silver_dt = DeltaTable(f"{lake_root}/silver/{topic}-value")
    silver_dt.delete("order_id IN (3, 103)")  # one row lost on each day
    day2_files = {
        a["path"]
        for a in pa.table(silver_dt.get_add_actions(flatten=True)).to_pylist()
        if str(a["partition._date"]) == str(DAY2.date())
    }
    day = str(DAY1.date())
    out = subprocess.run(
        [*CLI, "replay", "silver", "--subject", f"{topic}-value", "--from", day, "--to", day],
        env=ingest_env(broker, lake_root),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "61 records over 1 days" in out.stdout
    assert "rebuilding silver of" in out.stderr and "61/61" in out.stderr  # the progress bar
    ids = _silver(lake_root, topic).column("order_id").to_pylist()
    assert 3 in ids and 103 not in ids
    silver_dt.update_incremental()
    assert day2_files <= {
        a["path"] for a in pa.table(silver_dt.get_add_actions(flatten=True)).to_pylist()
    }


def test_a_rebuild_with_a_reader_schema_version(streamed, lake_root):
    topic, registry = streamed
    assert registry.register(f"{topic}-value", V3).version == 3  # drops coupon
    summary = rebuild_silver(Lake(lake_root), topic, SchemaResolver(registry), reader_version=3)
    assert summary.dead_letters == 2
    rows = _silver(lake_root, topic)
    assert rows.num_rows == 120
    # Every row read as v3: coupon is not in v3 (null), tip defaults where v1 wrote none.
    assert rows.column("coupon").null_count == 120
    v1 = rows.filter(pc.equal(rows.column("_schema_version"), 1))  # lineage: who wrote it
    assert v1.num_rows == 60
    assert set(v1.column("tip").to_pylist()) == {0.5}
    assert set(v1.column("kind").to_pylist()) == {"PICKUP"}


def test_a_topic_never_decoded_says_how_to_decode_it(broker, make_topic, lake_root):
    topic = make_topic(1)
    produce(broker.bootstrap_servers, topic, [Record(None, b"x", None, 0)])
    ingest_until_caught_up(broker, topic, lake_root, decode=False)
    with pytest.raises(ReplayError, match=r"--decode --until-caught-up"):
        rebuild_silver(Lake(lake_root), topic, SchemaResolver(SchemaStore.open(Lake(lake_root))))
