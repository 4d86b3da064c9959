"""Schema references, as Confluent's registry has them: a schema names types another
subject's version defines. Registered, returned, protected from deletion, and used end
to end: Confluent's serializers through Kafka, and silver decoding the records."""

from __future__ import annotations

import json
import uuid

import httpx
import polars as pl
import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.schema_registry import Schema, SchemaReference, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from ingest import Record, produce
from ingest.schema_registry_api import SchemaRegistryServer
from lake import Lake, SchemaStore
from lake.names import silver
from tests.conftest import ingest_until_caught_up

CITY = json.dumps({"type": "enum", "name": "City", "namespace": "geo", "symbols": ["OSLO", "LIMA"]})
ADDRESS = json.dumps(
    {
        "type": "record",
        "name": "Address",
        "namespace": "geo",
        "fields": [{"name": "street", "type": "string"}, {"name": "city", "type": "geo.City"}],
    }
)
ORDER = json.dumps(
    {
        "type": "record",
        "name": "Order",
        "namespace": "shop",
        "fields": [
            {"name": "order_id", "type": "long"},
            {"name": "ship_to", "type": "geo.Address"},
            {"name": "bill_to", "type": ["null", "geo.Address"], "default": None},
        ],
    }
)
CITY_REF = {"name": "geo.City", "subject": "city", "version": 1}
ADDRESS_REF = {"name": "geo.Address", "subject": "address", "version": 1}


@pytest.fixture
def server(tmp_path):
    with SchemaRegistryServer(SchemaStore.open(Lake(str(tmp_path / "lake")))) as s:
        yield s


def test_references_are_registered_returned_and_protected(server):
    http = httpx.Client(base_url=server.url)
    city = http.post("/subjects/city/versions", json={"schema": CITY}).json()["id"]
    r = http.post("/subjects/address/versions", json={"schema": ADDRESS, "references": [CITY_REF]})
    assert r.status_code == 200, r.text
    address = r.json()["id"]
    r = http.post("/subjects/o/versions", json={"schema": ORDER, "references": [ADDRESS_REF]})
    assert r.status_code == 200, r.text
    order = r.json()["id"]
    assert (city, address, order) == (1, 2, 3)

    got = http.get("/subjects/o/versions/1").json()
    assert got == {
        "subject": "o",
        "version": 1,
        "id": order,
        "references": [ADDRESS_REF],
        "schema": ORDER,
    }
    assert http.get(f"/schemas/ids/{order}").json() == {
        "schema": ORDER,
        "references": [ADDRESS_REF],
    }
    assert "references" not in http.get(f"/schemas/ids/{city}").json()
    assert http.get("/subjects/address/versions/1/referencedby").json() == [order]
    assert http.get("/subjects/city/versions/latest/referencedby").json() == [address]
    assert http.get("/subjects/o/versions/1/referencedby").json() == []
    # The same schema with the same references is the same version; lookups need them too.
    again = http.post("/subjects/o/versions", json={"schema": ORDER, "references": [ADDRESS_REF]})
    assert again.json()["id"] == order
    assert (
        http.post("/subjects/o", json={"schema": ORDER, "references": [ADDRESS_REF]}).json()[
            "version"
        ]
        == 1
    )
    assert http.post("/subjects/o", json={"schema": ORDER}).json()["error_code"] == 42201
    r = http.post(
        "/compatibility/subjects/o/versions/latest",
        json={"schema": ORDER, "references": [ADDRESS_REF]},
    )
    assert r.json() == {"is_compatible": True}

    # A referenced version cannot be deleted, softly or for good.
    key = "{magic=1,keytype=SCHEMA,subject=address,version=1}"
    for path in ("/subjects/address/versions/1", "/subjects/address"):
        r = http.delete(path)
        assert (r.status_code, r.json()) == (
            422,
            {"error_code": 42206, "message": f"One or more references exist to the schema {key}."},
        )
    # A reference to a version that does not exist is an invalid schema.
    r = http.post(
        "/subjects/p/versions",
        json={"schema": ORDER, "references": [{**ADDRESS_REF, "version": 9}]},
    )
    assert (r.status_code, r.json()["error_code"]) == (422, 42201)
    assert "version 9 of subject 'address'" in r.json()["message"]
    # A soft delete minds live referrers only; a permanent one every referrer.
    assert http.delete("/subjects/o").json() == [1]
    assert http.delete("/subjects/address/versions/1").json() == 1
    r = http.delete("/subjects/address/versions/1?permanent=true")
    assert (r.status_code, r.json()["error_code"]) == (422, 42206)
    assert http.delete("/subjects/o?permanent=true").json() == [1]
    assert http.delete("/subjects/address/versions/1?permanent=true").json() == 1
    assert http.get("/subjects/city/versions/1/referencedby").json() == []
    assert http.get("/subjects").json() == ["city"]


def test_confluent_serializers_with_references_through_kafka_into_silver(
    broker, make_topic, tmp_path
):
    lake_root = str(tmp_path / "lake")
    topic = make_topic(1)
    subject = f"{topic}-value"
    with SchemaRegistryServer(SchemaStore.open(Lake(lake_root))) as server:
        client = SchemaRegistryClient({"url": server.url})
        client.register_schema("city", Schema(CITY, "AVRO"))
        client.register_schema(
            "address", Schema(ADDRESS, "AVRO", [SchemaReference("geo.City", "city", 1)])
        )
        schema = Schema(ORDER, "AVRO", [SchemaReference("geo.Address", "address", 1)])
        ser = AvroSerializer(client, schema)
        ctx = SerializationContext(topic, MessageField.VALUE)
        events = [
            {
                "order_id": 1,
                "ship_to": {"street": "Karl Johans gate 1", "city": "OSLO"},
                "bill_to": None,
            },
            {
                "order_id": 2,
                "ship_to": {"street": "Jr. de la Union 300", "city": "LIMA"},
                "bill_to": {"street": "Av. Arequipa 5", "city": "LIMA"},
            },
        ]
        values = [ser(e, ctx) for e in events]
        produce(broker.bootstrap_servers, topic, [Record(None, v) for v in values])
        registered = client.get_latest_version(subject)
        assert [(r.name, r.subject, r.version) for r in registered.schema.references] == [
            ("geo.Address", "address", 1)
        ]

        consumer = Consumer(
            {"bootstrap.servers": broker.bootstrap_servers, "group.id": uuid.uuid4().hex}
        )
        consumer.assign([TopicPartition(topic, 0, 0)])
        got = []
        while len(got) < 2:
            m = consumer.poll(5)
            assert m is not None
            got.append(m.value())
        consumer.close()
        fresh = AvroDeserializer(SchemaRegistryClient({"url": server.url}))
        assert [fresh(v, ctx) for v in got] == events

    ingest_until_caught_up(broker, topic, lake_root)
    rows = Lake(lake_root).scan(silver(subject)).sort("order_id").collect()
    assert rows.select("order_id", "ship_to", "bill_to").to_dicts() == events
    assert rows.schema["ship_to"] == pl.Struct({"street": pl.String, "city": pl.String})


def test_an_external_registry_s_references_are_copied_into_the_lake(tmp_path):
    from ingest.schema_resolver import SchemaResolver

    with SchemaRegistryServer(SchemaStore.open(Lake(str(tmp_path / "elsewhere")))) as external:
        client = SchemaRegistryClient({"url": external.url})
        client.register_schema("city", Schema(CITY, "AVRO"))
        client.register_schema(
            "address", Schema(ADDRESS, "AVRO", [SchemaReference("geo.City", "city", 1)])
        )
        order = client.register_schema(
            "o", Schema(ORDER, "AVRO", [SchemaReference("geo.Address", "address", 1)])
        )
        ours = SchemaStore.open(Lake(str(tmp_path / "lake")))
        standalone = json.loads(SchemaResolver(ours, external.url).schema(order))
    assert standalone["fields"][1]["type"]["fields"][1]["type"]["symbols"] == ["OSLO", "LIMA"]
    # The external registry is gone; the lake has the schema and what it references.
    again = SchemaStore.open(Lake(str(tmp_path / "lake")))
    assert again.subjects() == ["address", "city", "o"]
    assert again.get("o").references[0].subject == "address"
    assert json.loads(again.resolved(order)) == standalone
