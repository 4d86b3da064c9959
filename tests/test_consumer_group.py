"""Two ingesters in one consumer group split the partitions; a killed one is replaced."""

from __future__ import annotations

import re
import signal
import time

from deltalake import DeltaTable

from lake import BronzeTable, Lake
from tests.conftest import bronze, ingest_env
from tests.kafka_data import assert_exactly_once, produce_known


def _assigned(log: str) -> set[int]:
    parts: set[int] = set()
    for m in re.finditer(r"assigned partitions \[([0-9, ]+)\]", log):
        parts |= {int(x) for x in m.group(1).split(",")}
    return parts


def test_two_ingesters_split_partitions_and_survive_a_kill(
    broker, make_topic, lake_root, processes
):
    topic = make_topic(4)
    # Enough that A (500-record commits) is mid-way when it is killed, even on a busy machine.
    expected = produce_known(broker.bootstrap_servers, topic, 4, 50_000, seed=3)
    env = ingest_env(broker, lake_root, batch_max_records=500)
    args = ["ingest", "--topic", topic, "--until-caught-up", "--group", "g-split"]
    a = processes.start(args, env, "a")
    b = processes.start(args, env, "b")
    # Wait until both own partitions and A has committed some of its own, then kill A.
    deadline = time.monotonic() + 60
    while not (
        _assigned(processes.log("a"))
        and _assigned(processes.log("b"))
        and "records, partitions" in processes.log("a")
    ):
        assert time.monotonic() < deadline, processes.log("a") + processes.log("b")
        assert a.poll() is None and b.poll() is None, processes.log("a") + processes.log("b")
        time.sleep(0.01)
    split_a, split_b = _assigned(processes.log("a")), _assigned(processes.log("b"))
    a.send_signal(signal.SIGKILL)
    a.wait(10)
    assert split_a and split_b, "both ingesters owned partitions before the kill"
    committed = BronzeTable.open(Lake(lake_root), topic).committed(sorted(split_a))
    unfinished = {p for p, c in committed.items() if c is None or c < 49_999}
    assert unfinished, "A was killed with work left"
    assert b.wait(120) == 0, processes.log("b")
    # B took over what A left unfinished, resuming from the lake's offsets.
    assert unfinished <= _assigned(processes.log("b")), processes.log("b")
    assert_exactly_once(bronze(lake_root, topic), expected)
    # Both processes committed to the same table.
    history = DeltaTable(f"{lake_root}/bronze/{topic}").history()
    writers = {c["eventlake.pid"] for c in history if c.get("operation") == "WRITE"}
    assert writers == {str(a.pid), str(b.pid)}
