"""The registry behaves as Confluent Schema Registry's API reference says, one test per
behaviour: through Confluent's own ``SchemaRegistryClient`` where it exposes the call,
raw HTTP otherwise. Messages are compared whole: clients and scripts match on them."""

from __future__ import annotations

import json

import httpx
import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from ingest.schema_registry_api import SchemaRegistryServer
from lake import Lake, SchemaStore


def record(name: str, *fields: tuple[str, object], **extra: object) -> str:
    body = {"type": "record", "name": name, "namespace": "shop"}
    body["fields"] = [{"name": n, "type": t, **extra.get(n, {})} for n, t in fields]  # type: ignore[dict-item, attr-defined]
    return json.dumps(body)


V1 = record("Order", ("id", "long"))
V2 = record("Order", ("id", "long"), ("tip", ["null", "double"]), tip={"default": None})
V3 = record(
    "Order", ("id", "long"), ("tip", ["null", "double"]), ("n", "int"),
    tip={"default": None}, n={"default": 0},
)  # fmt: skip


@pytest.fixture
def server(tmp_path):
    with SchemaRegistryServer(SchemaStore.open(Lake(str(tmp_path / "lake")))) as s:
        yield s


@pytest.fixture
def client(server):
    return SchemaRegistryClient({"url": server.url})


@pytest.fixture
def http(server):
    with httpx.Client(base_url=server.url) as c:
        yield c


def error(call) -> tuple[int, int, str]:
    with pytest.raises(SchemaRegistryError) as e:
        call()
    return e.value.http_status_code, e.value.error_code, e.value.error_message


def fill(client: SchemaRegistryClient, subject: str, *schemas: str) -> list[int]:
    return [client.register_schema(subject, Schema(s, "AVRO")) for s in schemas]


# -- hard delete ---------------------------------------------------------------------


def test_permanent_subject_delete_needs_a_soft_delete_first_and_removes_everything(client):
    ids = fill(client, "o", V1, V2)
    assert error(lambda: client.delete_subject("o", permanent=True)) == (
        404, 40405, "Subject 'o' was not deleted first before being permanently deleted",
    )  # fmt: skip
    assert client.delete_subject("o") == [1, 2]
    assert error(lambda: client.delete_subject("o")) == (
        404, 40404, "Subject 'o' was soft deleted.Set permanent=true to delete permanently",
    )  # fmt: skip
    assert client.get_subjects(deleted=True) == ["o"]
    assert client.delete_subject("o", permanent=True) == [1, 2]
    assert client.get_subjects(deleted=True) == []
    assert error(lambda: client.get_versions("o", deleted=True)) == (
        404, 40401, "Subject 'o' not found.",
    )  # fmt: skip
    assert error(lambda: client.get_schema(ids[1])) == (404, 40403, f"Schema {ids[1]} not found")
    # Numbering starts again; ids are never given to another schema.
    assert client.register_schema("o", Schema(V3, "AVRO")) == 3
    assert client.register_schema("o", Schema(V2, "AVRO")) == ids[1]  # the same schema's id
    assert client.get_versions("o") == [1, 2]


def test_permanent_version_delete_and_numbering_after_it(client, server):
    fill(client, "o", V1, V2, V3)
    assert error(lambda: client.delete_version("o", 3, permanent=True)) == (
        404, 40407, "Subject 'o' Version 3 was not deleted first before being permanently deleted",
    )  # fmt: skip
    assert client.delete_version("o", 3) == 3
    assert error(lambda: client.delete_version("o", 3)) == (
        404, 40406,
        "Subject 'o' Version 3 was soft deleted.Set permanent=true to delete permanently",
    )  # fmt: skip
    assert client.get_versions("o", deleted=True) == [1, 2, 3]
    assert client.delete_version("o", 3, permanent=True) == 3
    assert client.get_versions("o", deleted=True) == [1, 2]
    assert error(lambda: client.get_schema(3)) == (404, 40403, "Schema 3 not found")
    # The next version after a hard-deleted latest is max(remaining) + 1; the same
    # schema gets its id back, as in Confluent's registry.
    fresh = SchemaRegistryClient({"url": server.url})  # the client caches registrations
    assert fresh.register_schema("o", Schema(V3, "AVRO")) == 3
    assert fresh.get_version("o", 3).schema_id == 3


# -- deleted / deletedOnly -----------------------------------------------------------


def test_deleted_parameters_reach_every_read(client, http, server):
    ids = fill(client, "o", V1, V2)
    fill(client, "gone", V3)
    client.delete_version("o", 1)
    client.delete_subject("gone")
    client = SchemaRegistryClient({"url": server.url})  # nothing cached

    assert error(lambda: client.get_version("o", 1)) == (404, 40402, "Version 1 not found.")
    assert client.get_version("o", 1, deleted=True).schema_id == ids[0]
    # Lookups through raw HTTP: the client answers them from its cache of registrations.
    r = http.post("/subjects/o", json={"schema": V1})
    assert (r.status_code, r.json()) == (404, {"error_code": 40403, "message": "Schema not found"})
    assert http.post("/subjects/o?deleted=true", json={"schema": V1}).json()["version"] == 1
    assert error(lambda: client.get_schema_versions(ids[0])) == (404, 40403, "Schema not found")
    assert [(v.subject, v.version) for v in client.get_schema_versions(ids[0], deleted=True)] == [
        ("o", 1)
    ]
    assert client.get_subjects() == ["o"]
    assert client.get_subjects(deleted=True) == ["gone", "o"]
    assert client.get_subjects(deleted_only=True) == ["gone"]
    assert http.get("/subjects?deletedOnly=true").json() == ["gone"]
    assert client.get_versions("o") == [2]
    assert client.get_versions("o", deleted_only=True) == [1]
    assert http.get("/subjects/o/versions?deletedOnly=true").json() == [1]
    assert http.get("/subjects/o/versions/1/schema?deleted=true").text == V1


# -- endpoints that were missing -------------------------------------------------------


def test_config_deletes_schemas_listing_types_and_subjects_by_id(client, http):
    ids = fill(client, "o", V1, V2)
    fill(client, "p", V2)
    client.set_compatibility(level="FULL")
    client.set_compatibility("o", "NONE")
    assert http.delete("/config/o").json() == {"compatibilityLevel": "NONE"}
    assert http.get("/config/o").json()["error_code"] == 40408
    r = http.delete("/config/o")
    assert (r.status_code, r.json()) == (
        404,
        {"error_code": 40401, "message": "Subject 'o' not found."},
    )
    assert http.delete("/config").json() == {"compatibilityLevel": "FULL"}
    assert client.get_compatibility() == "BACKWARD"  # back to the default

    assert client.get_schema_types() == ["AVRO"]
    assert client.get_subjects_by_schema_id(ids[1]) == ["o", "p"]
    listed = http.get("/schemas").json()
    assert [(s["subject"], s["version"], s["id"]) for s in listed] == [
        ("o", 1, ids[0]), ("o", 2, ids[1]), ("p", 1, ids[1]),
    ]  # fmt: skip
    assert listed[0]["schema"] == V1
    latest = http.get("/schemas?latestOnly=true&subjectPrefix=o").json()
    assert [(s["subject"], s["version"]) for s in latest] == [("o", 2)]
    assert http.get("/schemas?offset=1&limit=1").json() == listed[1:2]


# -- schema text as registered -----------------------------------------------------------


def test_schema_text_comes_back_as_registered(client, http):
    spaced = (
        '{ "type" : "record",  "namespace": "shop", "name":"Order",\n'
        ' "fields": [ {"type": "long", "name": "id"} ] }'
    )
    sid = client.register_schema("o", Schema(spaced, "AVRO"))
    assert client.get_schema(sid).schema_str == spaced
    assert client.get_version("o", 1).schema.schema_str == spaced
    assert http.get("/subjects/o/versions/1/schema").text == spaced
    assert http.get(f"/schemas/ids/{sid}/schema").text == spaced
    # The same schema spelled differently is the same schema.
    assert client.register_schema("o", Schema(V1, "AVRO")) == sid
    assert client.lookup_schema("o", Schema(V1, "AVRO")).version == 1


# -- error codes and messages ------------------------------------------------------------


def test_error_codes_and_messages(client, http):
    fill(client, "o", V1)

    def err(r: httpx.Response) -> tuple[int, int, str]:
        return r.status_code, r.json()["error_code"], r.json()["message"]

    assert err(http.get("/subjects/nope/versions")) == (404, 40401, "Subject 'nope' not found.")
    assert err(http.get("/subjects/o/versions/7")) == (404, 40402, "Version 7 not found.")
    assert err(http.get("/schemas/ids/42")) == (404, 40403, "Schema 42 not found")
    assert err(http.get("/subjects/o/versions/0")) == (
        422, 42202,
        "The specified version '0' is not a valid version id. "
        'Allowed values are between [1, 2^31-1] and the string "latest"',
    )  # fmt: skip
    assert err(http.put("/config", json={"compatibility": "SIDEWAYS"})) == (
        422, 42203,
        "Invalid compatibility level. Valid values are none, backward, forward, full, "
        "backward_transitive, forward_transitive, and full_transitive",
    )  # fmt: skip
    assert err(http.post("/compatibility/subjects/o/versions/9", json={"schema": V2})) == (
        404, 40402, "Version 9 not found.",
    )  # fmt: skip
    assert err(http.post("/subjects/bad%01subject/versions", json={"schema": V1})) == (
        422, 42208, "The specified subject 'bad\x01subject' is not a valid.",
    )  # fmt: skip
    status, code, message = error(
        lambda: client.register_schema("o", Schema(record("Order", ("x", "string")), "AVRO"))
    )
    assert (status, code) == (409, 409)
    assert message.startswith(
        'Schema being registered is incompatible with an earlier schema for subject "o", details: '
    )
    assert err(http.post("/subjects/o/versions", content=b"{nope"))[:2] == (400, 400)
    assert err(http.delete("/nowhere"))[:2] == (404, 404)
    assert err(http.patch("/subjects"))[:2] == (405, 405)
    assert client.get_versions("o") == [1]  # nothing above wrote anything


@pytest.mark.parametrize(
    "field, default",
    [
        ("string", None),
        ("int", "seven"),
        ("int", 2**31),
        ("long", 1.5),
        ("boolean", 0),
        ({"type": "enum", "name": "E", "symbols": ["A", "B"]}, "C"),
        ({"type": "array", "items": "int"}, ["a"]),
        ({"type": "map", "values": "long"}, {"k": "v"}),
        ({"type": "record", "name": "In", "fields": [{"name": "x", "type": "int"}]}, {}),
        (["null", "string"], 3),
    ],
)
def test_a_default_that_does_not_match_its_type_is_refused(http, field, default):
    bad = json.dumps(
        {
            "type": "record",
            "name": "R",
            "fields": [{"name": "f", "type": field, "default": default}],
        }
    )
    r = http.post("/subjects/r/versions", json={"schema": bad})
    assert r.status_code == 422 and r.json()["error_code"] == 42201
    assert "the default of field R.f" in r.json()["message"]
    assert http.get("/subjects").json() == []


def test_defaults_that_match_are_accepted(http):
    fields = [
        {"name": "a", "type": ["null", "string"], "default": None},
        {"name": "b", "type": ["null", "string"], "default": "any branch"},  # Avro 1.12
        {"name": "c", "type": "double", "default": "NaN"},
        {
            "name": "d",
            "type": {
                "type": "record",
                "name": "In",
                "fields": [{"name": "x", "type": "int", "default": 1}],
            },
            "default": {},
        },
    ]
    r = http.post(
        "/subjects/r/versions",
        json={"schema": json.dumps({"type": "record", "name": "R", "fields": fields})},
    )
    assert r.status_code == 200, r.text


# -- content negotiation ------------------------------------------------------------------


def test_content_negotiation(http):
    assert http.get("/subjects").headers["content-type"] == "application/vnd.schemaregistry.v1+json"
    for accept, answered in [
        ("application/json", "application/json"),
        ("application/vnd.schemaregistry+json", "application/vnd.schemaregistry+json"),
        ("*/*", "application/vnd.schemaregistry.v1+json"),
        (
            "application/json; q=0.9, application/vnd.schemaregistry.v1+json",
            "application/vnd.schemaregistry.v1+json",
        ),
        ("text/html, application/*;q=0.2", "application/vnd.schemaregistry.v1+json"),
    ]:
        r = http.get("/subjects", headers={"Accept": accept})
        assert (r.status_code, r.headers["content-type"]) == (200, answered), accept
    r = http.get("/subjects", headers={"Accept": "text/html"})
    assert (r.status_code, r.json()["error_code"]) == (406, 406)
    r = http.post(
        "/subjects/o/versions",
        content=json.dumps({"schema": V1}),
        headers={"Content-Type": "text/plain"},
    )
    assert (r.status_code, r.json()["error_code"]) == (415, 415)
    assert http.get("/subjects").json() == []
    for ctype in (
        "application/octet-stream",
        "application/json; charset=utf-8",
        "application/vnd.schemaregistry.v1+json",
    ):
        r = http.post(
            "/subjects/o/versions",
            content=json.dumps({"schema": V1}),
            headers={"Content-Type": ctype},
        )
        assert r.status_code == 200, (ctype, r.text)


# -- any subject name ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "subject",
    [
        "a:b",
        'quote"d',
        "{braced}",
        "star*",
        "a/b",
        "../../etc/passwd",
        "/abs",
        "spaced name",
        "ünïcode",
        "x" * 500,
    ],
)
def test_any_subject_confluent_accepts_is_stored(client, subject):
    sid = client.register_schema(subject, Schema(V1, "AVRO"))
    assert client.get_subjects() == [subject]
    assert client.get_latest_version(subject).schema_id == sid
    assert client.get_versions(subject) == [1]
    assert client.lookup_schema(subject, Schema(V1, "AVRO")).version == 1
    client.set_compatibility(subject, "NONE")
    assert client.get_compatibility(subject) == "NONE"
    assert client.delete_subject(subject) == [1]
    assert client.delete_subject(subject, permanent=True) == [1]
    assert client.get_subjects(deleted=True) == []


def test_dot_subjects_through_raw_http(http):
    """``.`` and ``..`` are subjects too; HTTP clients fold them out of paths unless
    percent-encoded, as Confluent's clients must too."""
    for encoded in ("%2E", "%2E%2E"):
        r = http.post(f"/subjects/{encoded}/versions", json={"schema": V1})
        assert r.status_code == 200, r.text
        assert http.get(f"/subjects/{encoded}/versions").json() == [1]
    assert http.get("/subjects").json() == [".", ".."]


NASTY = [
    "../x",
    "../../etc/passwd",
    "/etc/passwd",
    "a/b",
    "a\\b",
    "C:\\x",
    "\x00\x1f\n",
    "..",
    ".",
    "~",
    "~abc",
    "~~abc",
    "x" * 10_000,
    "ü" * 200,
    "%2F",
]


@pytest.mark.parametrize("subject", NASTY)
def test_silver_tables_of_any_subject_stay_inside_the_lake(tmp_path, subject):
    import os

    import pyarrow as pa

    from lake.names import from_segment, silver, table_uri

    root = tmp_path / "lake"
    uri = table_uri(str(root), silver(subject))
    inside = os.path.realpath(root / "silver")
    assert os.path.dirname(os.path.realpath(uri)) == inside
    seg = os.path.basename(uri)
    assert len(seg.encode()) <= 255 and "/" not in seg and "\\" not in seg
    assert seg not in (".", "..") and all(c.isprintable() for c in seg)
    if len(seg) < 255 and not seg.startswith("~~"):
        assert from_segment(seg) == subject  # reversible
    lake = Lake(str(root))
    lake.open_or_create(silver(subject), pa.schema([pa.field("x", pa.int64())]))
    assert os.listdir(root / "silver") == [seg]
    if not seg.startswith("~~"):
        assert lake.names() == [silver(subject)]


def test_plain_subject_names_keep_their_table_paths():
    from lake.names import segment

    for plain in ("orders-value", "shop.Order", "orders-shop.Placed", "a_b"):
        assert segment(plain) == plain  # lakes written before stay where they are
    assert len({segment(s) for s in NASTY}) == len(NASTY)  # no two subjects share a table


def test_any_subject_becomes_a_valid_dagster_asset(tmp_path):
    import dagster as dg

    from orchestration.defs import LakeResource, Topology
    from orchestration.defs.lake_assets import silver_asset

    subjects = ["orders-value", "a/b", "team:orders", "x" * 300]
    topo = Topology([], subjects={s: ["orders"] for s in subjects})
    days = dg.DailyPartitionsDefinition(start_date="2026-11-01")
    defs = dg.Definitions(
        assets=[silver_asset(topo, s, days) for s in subjects],
        resources={"lake": LakeResource(lake_root=str(tmp_path))},
    )
    specs = defs.resolve_all_asset_specs()
    keys = sorted(spec.key.path[1] for spec in specs if spec.key.path[0] == "silver")
    assert len(set(keys)) == 4 and "orders-value" in keys and "encoded_mexwe" in keys
