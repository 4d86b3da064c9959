"""Invariant 1: killing the ingester at any moment leaves every offset in bronze once,
for each of the topics one process ingests."""

from __future__ import annotations

import random
import signal
import time

from tests.conftest import bronze, bronze_version, ingest_env
from tests.kafka_data import assert_exactly_once, produce_known

PARTITIONS = 3
PER_PARTITION = 6_000  # 3 topics x 3 partitions: 54,000 records


def test_sigkill_at_random_moments_then_restart(broker, make_topic, lake_root, processes):
    topics = [make_topic(PARTITIONS) for _ in range(3)]
    expected = {
        t: produce_known(broker.bootstrap_servers, t, PARTITIONS, PER_PARTITION, seed=i)
        for i, t in enumerate(topics)
    }
    args = ["ingest", *(a for t in topics for a in ("--topic", t)), "--until-caught-up"]

    def version() -> int:
        return sum(bronze_version(lake_root, t) for t in topics)

    # Small batches: about a hundred commits, so every kill lands mid-stream.
    env = ingest_env(broker, lake_root, batch_max_records=500)
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    kills = 0
    for attempt in range(12):
        before = version()
        proc = processes.start(args, env, f"run{attempt}")
        if attempt == 0:
            time.sleep(rng.uniform(0.2, 1.5))  # during start-up, before any commit
        else:
            deadline = time.monotonic() + 30
            while version() <= before and proc.poll() is None:
                assert time.monotonic() < deadline, processes.log(f"run{attempt}")
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 0.25))  # somewhere among the commits
        if proc.poll() is not None:
            break  # finished before the kill
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        kills += 1
        if kills >= 4:
            break
    assert kills >= 3, f"only {kills} kills landed (seed {seed})"
    final = processes.start(args, env, "final")
    assert final.wait(120) == 0, processes.log("final")
    for t in topics:
        assert_exactly_once(bronze(lake_root, t), expected[t])
    assert "ingested" in processes.log("final") and "3 topic(s)" in processes.log("final")
