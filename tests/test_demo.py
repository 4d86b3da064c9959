"""``eventlake demo``: the main job on the embedded default."""

from __future__ import annotations

import os
import subprocess

from tests.conftest import CLI, bronze


def test_demo_runs_on_the_embedded_broker_and_reports_what_landed(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTLAKE_")}
    root = tmp_path / "demo"
    out = subprocess.run(
        [*CLI, "demo", "--root", str(root), "--events", "3000"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "produced 3,000 events to app_events (3 partitions)" in out.stdout
    assert out.stdout.count("no gaps, no duplicates") == 3
    table = bronze(str(root / "lake"), "app_events")
    assert table.num_rows == 3000
    assert table.column("headers")[0].as_py() == [{"key": "source", "value": b"eventlake-demo"}]
