"""lake.SchemaStore: Confluent semantics, stored in Delta tables."""

from __future__ import annotations

import json
import threading

import pytest
from deltalake import DeltaTable

from lake import IncompatibleSchema, InvalidSchema, InvalidSubject, Lake, SchemaNotFound
from lake.schema_store import SchemaStore


def record(*fields: dict, name: str = "Order") -> str:
    return json.dumps({"type": "record", "name": name, "namespace": "shop", "fields": list(fields)})


V1 = record(
    {"name": "id", "type": "int"},
    {
        "name": "kind",
        "type": {"type": "enum", "name": "Kind", "symbols": ["A", "B"], "default": "A"},
    },
)
V2 = record(
    {"name": "id", "type": "long"},
    {
        "name": "kind",
        "type": {"type": "enum", "name": "Kind", "symbols": ["A", "B", "C"], "default": "A"},
    },
    {"name": "note", "type": ["null", "string"], "default": None},
)
BREAKS = record({"name": "id", "type": "int"}, {"name": "price", "type": "double"})


@pytest.fixture
def reg(tmp_path) -> SchemaStore:
    return SchemaStore.open(Lake(str(tmp_path)))


def test_versions_ids_and_idempotence(reg, tmp_path):
    a = reg.register("orders-value", V1)
    b = reg.register("orders-value", V2)
    assert (a.id, a.version, b.id, b.version) == (1, 1, 2, 2)
    assert reg.register("orders-value", json.dumps(json.loads(V1), indent=4)).version == 1
    # The same schema under another subject keeps its global id.
    other = reg.register("returns-value", V1)
    assert (other.id, other.version) == (1, 1)
    assert reg.subjects() == ["orders-value", "returns-value"]
    assert reg.versions("orders-value") == [1, 2]
    assert reg.get("orders-value").id == 2
    assert json.loads(reg.by_id(2))["fields"][2]["name"] == "note"
    assert reg.subjects_of(1) == [("orders-value", 1), ("returns-value", 1)]
    assert reg.lookup("orders-value", V2).version == 2
    # Persisted: a fresh instance sees everything, and the table holds one row per version.
    again = SchemaStore.open(Lake(str(tmp_path)))
    assert again.versions("orders-value") == [1, 2]
    rows = DeltaTable(str(tmp_path / "registry" / "schemas")).to_pyarrow_table()
    assert sorted(zip(rows["subject"].to_pylist(), rows["version"].to_pylist(), strict=True)) == [
        ("orders-value", 1),
        ("orders-value", 2),
        ("returns-value", 1),
    ]


def test_backward_is_the_default_and_names_the_field(reg):
    reg.register("orders-value", V1)
    with pytest.raises(IncompatibleSchema) as e:
        reg.register("orders-value", BREAKS)
    msg = str(e.value)
    assert "incompatible under BACKWARD" in msg
    assert "reader_field_missing_default_value at /fields/1 (price)" in msg
    assert reg.versions("orders-value") == [1]  # nothing written


def test_levels_per_subject_and_global(reg):
    reg.register("a-value", V2)
    narrowing = V1  # long -> int and a removed enum symbol: old data unreadable
    assert reg.problems("a-value", narrowing)
    reg.set_compatibility("NONE", "a-value")
    assert reg.register("a-value", narrowing).version == 2
    assert reg.compatibility("a-value") == "NONE"
    assert reg.compatibility("b-value") == "BACKWARD"
    reg.set_compatibility("FULL")
    assert reg.compatibility("b-value") == "FULL"
    assert reg.compatibility("b-value", fallback=False) is None
    with pytest.raises(ValueError, match="unknown compatibility level 'SIDEWAYS'"):
        reg.set_compatibility("sideways")


def test_transitive_checks_every_version(reg):
    reg.set_compatibility("BACKWARD_TRANSITIVE", "t-value")
    a = record({"name": "x", "type": "int"})
    b = record({"name": "x", "type": "int"}, {"name": "y", "type": "int", "default": 0})
    c = record({"name": "y", "type": "int"})  # reads b's data, not a's (y missing there)
    reg.register("t-value", a)
    reg.register("t-value", b)
    problems = reg.problems("t-value", c)
    assert len(problems) == 1 and "version 1" in problems[0]
    reg.set_compatibility("BACKWARD", "t-value")
    assert reg.problems("t-value", c) == []


def test_soft_delete(reg):
    reg.register("d-value", V1)
    reg.register("d-value", V2)
    assert reg.delete("d-value", 2) == [2]
    assert reg.versions("d-value") == [1]
    assert reg.versions("d-value", include_deleted=True) == [1, 2]
    assert reg.by_id(2)  # ids stay resolvable: old records still decode
    assert reg.delete("d-value") == [1]
    assert reg.subjects() == []
    with pytest.raises(SchemaNotFound, match="subject 'd-value' not found"):
        reg.get("d-value")


def test_bad_input(reg):
    with pytest.raises(InvalidSchema, match="invalid Avro schema"):
        reg.register("x-value", '{"type": "record", "name": "O"}')
    with pytest.raises(InvalidSchema):
        reg.register("x-value", "not json")
    with pytest.raises(InvalidSubject, match="control characters"):
        reg.register("x\x00-value", V1)
    with pytest.raises(SchemaNotFound, match="schema id 99 not found"):
        reg.by_id(99)
    assert reg.subjects() == []


def test_concurrent_registrations_get_distinct_ids(tmp_path):
    regs = [SchemaStore.open(Lake(str(tmp_path))) for _ in range(4)]
    results: list = []

    def register(i: int) -> None:
        schema = record({"name": f"f{i}", "type": "int"}, name=f"R{i}")
        results.append(regs[i].register(f"s{i}-value", schema))

    threads = [threading.Thread(target=register, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.id for r in results) == [1, 2, 3, 4]
