"""Starting the real `eventlake ingest` command from a benchmark."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def start_ingest(
    topic: str, *flags: str, bootstrap: str, lake: str, **settings: str
) -> subprocess.Popen[str]:
    """`eventlake ingest --topic TOPIC FLAGS...` with only the EVENTLAKE_* settings given
    (bootstrap servers, lake root, and ``settings`` by name), stdout piped."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTLAKE_")}
    env.update(EVENTLAKE_KAFKA_BOOTSTRAP_SERVERS=bootstrap, EVENTLAKE_LAKE_ROOT=lake)
    env.update({f"EVENTLAKE_{k.upper()}": v for k, v in settings.items()})
    command = [
        sys.executable,
        "-m",
        "orchestration",
        "--log-level",
        "WARNING",
        "ingest",
        "--topic",
        topic,
        *flags,
    ]
    return subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True)
