"""`eventlake serve` with two uvicorn workers: consistent answers, and schemathesis
fuzzing its own OpenAPI description finds no server error."""

from __future__ import annotations

import re
import subprocess
import time
import uuid

import httpx
import pytest

from ingest import free_port
from tests.conftest import CLI, fuzz, ingest_env
from tests.orders_data import trained_lake

EVENT = {"order_id": 7, "user_id": 2, "distance_km": 3.5}


@pytest.fixture(scope="module")
def server(broker, tmp_path_factory):
    """``eventlake serve --workers 2`` over a trained lake; killed at the end."""
    tmp = tmp_path_factory.mktemp("fuzz")
    topic = f"orders-{uuid.uuid4().hex[:8]}"
    lake, spec, _ = trained_lake(broker, str(tmp / "lake"), topic)
    port = free_port()
    env = ingest_env(broker, lake.root, definitions="tests.definitions_orders")
    env["ORDERS_TOPIC_FOR_TESTS"] = topic
    log = open(tmp / "serve.log", "wb")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(
        [*CLI, "serve", "--port", str(port), "--workers", "2"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, (tmp / "serve.log").read_text()
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, (tmp / "serve.log").read_text()
        time.sleep(0.2)
    yield url, spec
    proc.terminate()
    proc.wait(20)
    log.close()


def test_two_workers_answer_alike(server):
    url, spec = server
    answers = set()
    with httpx.Client(base_url=url) as c:
        for _ in range(20):  # new connections land on either worker
            r = httpx.post(f"{url}/models/{spec.name}/predict", json={"events": [EVENT]})
            assert r.status_code == 200, r.text
            p = r.json()["predictions"][0]
            answers.add((p["model_version"], round(p["prediction"], 9)))
        assert c.get("/openapi.json").json()["info"]["title"] == "eventlake serving"
        assert c.get("/docs").status_code == 200
    assert len(answers) == 1 and next(iter(answers))[0] == 1


def test_fuzzed_requests_never_get_a_server_error(server, tmp_path):
    """schemathesis over every operation of the OpenAPI description (see ``fuzz``)."""
    url, _ = server
    out = fuzz(f"{url}/openapi.json", tmp_path, max_examples=60, timeout_s=240)
    assert "Tested: 6" in out, out[-4000:]
    assert re.search(r"Test cases:\s+\d{3,} generated", out), out[-2000:]
