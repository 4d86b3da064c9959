"""Prometheus metrics and the per-commit log line of a running ingester."""

from __future__ import annotations

import re
import signal
import time
import urllib.request

from ingest import free_port
from tests.conftest import ingest_env
from tests.kafka_data import produce_known


def _metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return r.read().decode()


def _sample(text: str, name: str, labels: str) -> float | None:
    m = re.search(rf"^{re.escape(name)}\{{{re.escape(labels)}\}} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def test_metrics_and_log_lines_report_what_was_committed(broker, make_topic, lake_root, processes):
    topic = make_topic(2)
    port = free_port()
    proc = processes.start(
        ["ingest", "--topic", topic, "--metrics-port", str(port)],
        ingest_env(broker, lake_root),
        "ingest",
    )
    produce_known(broker.bootstrap_servers, topic, 2, 1500)
    deadline = time.monotonic() + 30
    text = ""
    while time.monotonic() < deadline:
        try:
            text = _metrics(port)
        except OSError:
            text = ""
        if _sample(text, "eventlake_ingest_records_total", f'topic="{topic}"') == 3000:
            break
        assert proc.poll() is None, processes.log("ingest")
        time.sleep(0.2)
    assert _sample(text, "eventlake_ingest_records_total", f'topic="{topic}"') == 3000
    assert _sample(text, "eventlake_ingest_batches_total", f'topic="{topic}"') >= 1
    for p in ("0", "1"):
        assert (
            _sample(text, "eventlake_ingest_lag_records", f'partition="{p}",topic="{topic}"') == 0
        )
    assert _sample(text, "eventlake_ingest_commit_seconds_count", f'topic="{topic}"') >= 1
    assert "eventlake_ingest_errors_total" in text or "eventlake_ingest_errors" in text
    proc.send_signal(signal.SIGINT)
    assert proc.wait(20) == 0
    log = processes.log("ingest")
    lines = re.findall(
        rf"bronze\.{topic} v(\d+): (\d+) records, partitions (.*?), commit (\d+) ms, "
        rf"batch latency (\d+) ms",
        log,
    )
    assert sum(int(n) for _, n, *_ in lines) == 3000
    assert [int(v) for v, *_ in lines] == list(range(1, len(lines) + 1))
