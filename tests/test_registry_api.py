"""The Confluent-compatible REST API, driven by Confluent's own client and serializers."""

from __future__ import annotations

import json

import httpx
import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient, SchemaRegistryError
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from ingest import Record, produce
from ingest.schema_registry_api import SchemaRegistryServer
from lake import Lake, SchemaStore

V1 = json.dumps(
    {
        "type": "record",
        "name": "OrderPlaced",
        "namespace": "shop",
        "fields": [
            {"name": "order_id", "type": "long"},
            {"name": "distance_km", "type": "double"},
        ],
    }
)
V2 = json.dumps(
    {
        "type": "record",
        "name": "OrderPlaced",
        "namespace": "shop",
        "fields": [
            {"name": "order_id", "type": "long"},
            {"name": "distance_km", "type": "double"},
            {"name": "tip", "type": ["null", "double"], "default": None},
        ],
    }
)
BAD = json.dumps(
    {
        "type": "record",
        "name": "OrderPlaced",
        "namespace": "shop",
        "fields": [
            {"name": "order_id", "type": "long"},
            {"name": "coupon", "type": "string"},
        ],
    }
)


@pytest.fixture
def server(tmp_path):
    registry = SchemaStore.open(Lake(str(tmp_path / "lake")))
    with SchemaRegistryServer(registry) as s:
        yield s


def test_confluent_serializers_round_trip_through_kafka(server, broker, make_topic):
    topic = make_topic(1)
    client = SchemaRegistryClient({"url": server.url})
    ser1 = AvroSerializer(client, V1)
    ser2 = AvroSerializer(client, V2)
    ctx = SerializationContext(topic, MessageField.VALUE)
    values = [
        ser1({"order_id": 1, "distance_km": 2.5}, ctx),
        ser2({"order_id": 2, "distance_km": 3.0, "tip": 1.5}, ctx),
    ]
    assert [v[:5] for v in values] == [b"\x00\x00\x00\x00\x01", b"\x00\x00\x00\x00\x02"]
    produce(broker.bootstrap_servers, topic, [Record(None, v) for v in values])

    consumer = Consumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": "reader"})
    consumer.assign([TopicPartition(topic, 0, 0)])
    got = []
    while len(got) < 2:
        m = consumer.poll(5)
        assert m is not None
        got.append(m.value())
    consumer.close()
    fresh = SchemaRegistryClient({"url": server.url})  # no cache: asks the server by id
    deser = AvroDeserializer(fresh)
    assert [deser(v, ctx) for v in got] == [
        {"order_id": 1, "distance_km": 2.5},
        {"order_id": 2, "distance_km": 3.0, "tip": 1.5},
    ]
    assert fresh.get_subjects() == [f"{topic}-value"]
    assert fresh.get_versions(f"{topic}-value") == [1, 2]
    latest = fresh.get_latest_version(f"{topic}-value")
    assert (latest.schema_id, latest.version) == (2, 2)


def test_incompatible_schema_is_refused_with_the_field_and_rule(server):
    client = SchemaRegistryClient({"url": server.url})
    client.register_schema("orders-value", Schema(V1, "AVRO"))
    with pytest.raises(SchemaRegistryError) as e:
        client.register_schema("orders-value", Schema(BAD, "AVRO"))
    assert e.value.http_status_code == 409
    assert "reader_field_missing_default_value at /fields/1 (coupon)" in e.value.error_message
    assert client.test_compatibility("orders-value", Schema(V2, "AVRO")) is True
    assert client.test_compatibility("orders-value", Schema(BAD, "AVRO")) is False
    assert client.get_versions("orders-value") == [1]


def test_rest_errors_and_config(server):
    http = httpx.Client(base_url=server.url)

    def err(r: httpx.Response) -> tuple[int, int]:
        return r.status_code, r.json()["error_code"]

    assert err(http.get("/subjects/nope/versions")) == (404, 40401)
    assert err(http.get("/schemas/ids/42")) == (404, 40403)
    http.post("/subjects/o-value/versions", json={"schema": V1})
    assert err(http.get("/subjects/o-value/versions/7")) == (404, 40402)
    assert err(http.get("/subjects/o-value/versions/zero")) == (422, 42202)
    assert err(http.post("/subjects/o-value", json={"schema": V2})) == (404, 40403)
    assert err(http.post("/subjects/o-value/versions", json={"schema": "{not json"})) == (
        422,
        42201,
    )
    assert err(http.post("/subjects/o-value/versions", content=b"[1, 2")) == (400, 400)
    assert err(http.post("/subjects/o-value/versions", json=[1, 2])) == (422, 422)
    assert err(http.put("/config", json={"compatibility": "SIDEWAYS"})) == (422, 42203)
    assert err(http.get("/config/o-value")) == (404, 40408)
    # Nothing above changed the registry.
    assert http.get("/subjects").json() == ["o-value"]
    assert http.get("/subjects/o-value/versions").json() == [1]

    assert http.get("/config").json() == {"compatibilityLevel": "BACKWARD"}
    assert http.put("/config/o-value", json={"compatibility": "FULL"}).json() == {
        "compatibility": "FULL"
    }
    assert http.get("/config/o-value").json() == {"compatibilityLevel": "FULL"}
    r = http.post(
        "/compatibility/subjects/o-value/versions/latest?verbose=true", json={"schema": V2}
    )
    assert r.json() == {"is_compatible": True, "messages": []}
    assert http.post("/subjects/o-value", json={"schema": V1}).json()["version"] == 1
    assert http.get("/subjects/o-value/versions/latest/schema").json()["name"] == "OrderPlaced"
    assert http.get("/schemas/ids/1/versions").json() == [{"subject": "o-value", "version": 1}]
    assert http.delete("/subjects/o-value").json() == [1]
    assert http.get("/subjects").json() == []
    assert http.get("/subjects?deleted=true").json() == ["o-value"]
    assert http.get("/schemas/ids/1").json()["schema"] == V1  # as registered


def test_registry_command_serves_on_loopback_and_stops(tmp_path):
    import os
    import signal
    import subprocess

    from ingest import free_port
    from tests.conftest import CLI

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTLAKE_")}
    env["EVENTLAKE_LAKE_ROOT"] = str(tmp_path / "lake")
    proc = subprocess.Popen(
        [*CLI, "registry", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert line.startswith(f"schema registry (Confluent REST API) at http://127.0.0.1:{port}")
        r = httpx.post(f"http://127.0.0.1:{port}/subjects/x-value/versions", json={"schema": V1})
        assert r.json()["id"] == 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert SchemaStore.open(Lake(str(tmp_path / "lake"))).versions("x-value") == [1]


def test_schemas_from_an_external_registry_are_copied_into_the_lake(tmp_path):
    from ingest.schema_resolver import SchemaResolver

    external = SchemaStore.open(Lake(str(tmp_path / "elsewhere")))
    with SchemaRegistryServer(external) as server:
        client = SchemaRegistryClient({"url": server.url})
        client.register_schema("orders-value", Schema(V1, "AVRO"))
        sid = client.register_schema("orders-value", Schema(V2, "AVRO"))
        ours = SchemaStore.open(Lake(str(tmp_path / "lake")))
        resolver = SchemaResolver(ours, server.url)
        assert json.loads(resolver.schema(sid))["fields"][2]["name"] == "tip"
        with pytest.raises(Exception, match="schema id 99"):
            resolver.schema(99)
    # The external registry is gone; the lake still resolves the id, with its subject.
    again = SchemaResolver(SchemaStore.open(Lake(str(tmp_path / "lake"))), server.url)
    assert json.loads(again.schema(sid))["fields"][2]["name"] == "tip"
    assert ours.get("orders-value", 2).id == sid
    assert ours.subjects_of(sid) == [("orders-value", 2)]
