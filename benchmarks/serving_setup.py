"""Shared set-up of the serving benchmarks (not measured): the demo's food-delivery app
sends ``history`` orders with their deliveries on the embedded broker; they are
ingested and decoded, the ``order_eta`` features computed, and the ``eta`` model
learned online and made champion."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from features import update_features  # noqa: E402
from ingest import Ingester, IngestOptions  # noqa: E402
from ingest.kafka import ensure_topic, wait_for_broker  # noqa: E402
from lake import Lake  # noqa: E402
from orchestration.demo.definitions import DELIVERED_TOPIC, ETA, ORDERS_TOPIC  # noqa: E402
from orchestration.demo.simulation import EventPublisher, FoodDeliveryWorld  # noqa: E402
from training.evaluation import evaluate  # noqa: E402
from training.online import learn_online  # noqa: E402


def demo_lake(bs: str, lake: str, registry_url: str, history: int, partitions: int = 2) -> None:
    """The demo's orders and deliveries in ``lake``, ``eta`` learned and champion."""
    admin = wait_for_broker(bs, wait_s=30)
    for topic in (ORDERS_TOPIC, DELIVERED_TOPIC):
        ensure_topic(admin, topic, bootstrap_servers=bs, create=True, partitions=partitions)
    app = EventPublisher(bs, registry_url)
    for event in FoodDeliveryWorld(orders_per_hour=120).events(history):
        app.send(event)
    app.flush()
    for topic in (ORDERS_TOPIC, DELIVERED_TOPIC):
        Ingester(
            IngestOptions(bootstrap_servers=bs, topics=(topic,), lake=Lake(lake), decode_avro=True)
        ).run(until_caught_up=True)
    update_features(Lake(lake), ETA.feature_set)
    version = learn_online(Lake(lake), ETA).version
    assert version is not None
    evaluate(Lake(lake), ETA, version.version)
    print(f"set-up: {history} orders of history; eta v{version.version} is champion", flush=True)


def start(args: list[str], env_extra: dict[str, str], *, module: bool = True) -> subprocess.Popen:
    """An eventlake command (or ``python -m ...`` when not ``module``) with only our env."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTLAKE_")}
    env.update(env_extra)
    cmd = [sys.executable, "-m", "orchestration", "--log-level", "WARNING", *args] if module else [
        sys.executable, *args]  # fmt: skip
    return subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip


def peak_rss_mib(proc: subprocess.Popen) -> float:
    """Peak RSS (VmHWM) of ``proc`` and its children (uvicorn workers), summed, in MiB."""
    pids = [proc.pid]
    try:
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(proc.pid)],
                             capture_output=True, text=True).stdout  # fmt: skip
        pids += [int(p) for p in out.split()]
    except OSError:
        pass
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM the process group and wait."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def pct(values_s: list[float]) -> tuple[float, float, float]:
    """(p50, p99, max) in milliseconds."""
    a = np.array(values_s) * 1000
    return float(np.percentile(a, 50)), float(np.percentile(a, 99)), float(a.max())


def own_peak_rss_mib() -> float:
    """This process's peak RSS."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
