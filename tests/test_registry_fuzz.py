"""schemathesis fuzzes the registry through its own OpenAPI description: no 5xx, and
the registry left behind is readable and consistent."""

from __future__ import annotations

import re
from urllib.parse import quote

import httpx

from ingest.schema_registry_api import SchemaRegistryServer
from lake import Lake, SchemaStore, parse_schema
from tests.conftest import fuzz
from tests.test_registry_conformance import V1, V2


def test_fuzzed_registry_never_answers_5xx_and_stays_consistent(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    with SchemaRegistryServer(SchemaStore.open(lake)) as server:
        http = httpx.Client(base_url=server.url)
        for subject in ("orders-value", "a/b", "x"):  # something for the fuzzer to find
            for schema in (V1, V2):
                assert (
                    http.post(
                        f"/subjects/{quote(subject, safe='')}/versions", json={"schema": schema}
                    ).status_code
                    == 200
                )
        doc = http.get("/openapi.json").json()
        assert len([op for path in doc["paths"].values() for op in path]) == 24
        out = fuzz(f"{server.url}/openapi.json", tmp_path, max_examples=20)
        assert "Tested: 24" in out, out[-4000:]
        assert re.search(r"Test cases:\s+\d{3,} generated", out), out[-2000:]

        # Whatever the fuzzer did, every subject and version it left reads back whole.
        subjects = http.get("/subjects?deleted=true").json()
        assert subjects == sorted(subjects) and len(subjects) >= 1
        for subject in subjects:
            path = f"/subjects/{quote(subject, safe='')}/versions"
            for v in http.get(f"{path}?deleted=true").json():
                got = http.get(f"{path}/{v}?deleted=true")
                assert got.status_code == 200, (subject, v, got.text)
                sid = got.json()["id"]
                by_id = http.get(f"/schemas/ids/{sid}").json()
                if not got.json().get("references"):  # one id, one schema (maybe spelled otherwise)
                    assert (
                        parse_schema(by_id["schema"]).text
                        == parse_schema(got.json()["schema"]).text
                    )
    # The lake holds the same registry when opened afresh, and every schema parses.
    store = SchemaStore.open(lake)
    assert store.subjects(include_deleted=True) == subjects
    for subject in subjects:
        for version in store.versions(subject, include_deleted=True):
            parse_schema(store.resolved(store.get(subject, version, include_deleted=True).id))
