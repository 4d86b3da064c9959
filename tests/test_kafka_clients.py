"""Every Kafka client eventlake creates is configured in one place, from the settings:
bootstrap, security protocol, SASL, TLS files and extra properties; secrets are never
printed."""

from __future__ import annotations

import ast
import os
import subprocess
import threading
from pathlib import Path

import pytest
from confluent_kafka import KafkaException

from ingest import EventProducer, Ingester, IngestOptions, Record, produce
from ingest.kafka import high_watermarks, wait_for_broker
from ingest.republish import republish
from lake import Lake, SchemaStore
from orchestration.errors import ConfigError
from orchestration.settings import load_settings
from tests.conftest import CLI

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("ingest", "lake", "features", "training", "orchestration")
# A property librdkafka refuses when the client is built: proof the options reached it.
PROBE = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "NOT-A-MECHANISM"}
SECURE = {
    "EVENTLAKE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "EVENTLAKE_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "EVENTLAKE_KAFKA_SASL_USERNAME": "ingest",
    "EVENTLAKE_KAFKA_SASL_PASSWORD": "hunter2-secret",
    "EVENTLAKE_KAFKA_SSL_CA_LOCATION": "/etc/kafka/ca.pem",
    "EVENTLAKE_KAFKA_CLIENT_OPTIONS": '{"client.rack": "eu-1", "sasl.oauthbearer.config": "x"}',
    "EVENTLAKE_STORAGE_OPTIONS": '{"aws_secret_access_key": "s3-secret", "region": "eu"}',
}


def test_every_client_constructor_takes_the_one_configuration():
    """Each Consumer, Producer and AdminClient in the code gets ``client_config(...)``
    or ``consumer_config(...)`` (which builds on it): a client built any other way
    would miss the security settings."""
    builders = {"client_config", "consumer_config"}
    found = []
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
                    continue
                if node.func.id not in ("Consumer", "Producer", "AdminClient"):
                    continue
                arg = node.args[0] if node.args else None
                if isinstance(arg, ast.Dict) and arg.keys and arg.keys[0] is None:
                    arg = arg.values[0]  # {**consumer_config(...), "logger": ...}
                ok = isinstance(arg, ast.Call) and getattr(arg.func, "id", "") in builders
                found.append((f"{path.relative_to(ROOT)}:{node.lineno}", ok))
    assert len(found) >= 9, found
    assert [where for where, ok in found if not ok] == []


def test_the_options_reach_each_kind_of_client(broker, make_topic, tmp_path):
    """Every entry point that opens a Kafka client passes the connection options on."""
    topic = make_topic(1)
    lake = Lake(str(tmp_path / "lake"))
    produce(broker.bootstrap_servers, topic, [Record(None, b"x")])
    Ingester(
        IngestOptions(bootstrap_servers=broker.bootstrap_servers, topics=(topic,), lake=lake)
    ).run(until_caught_up=True)
    bs = broker.bootstrap_servers
    calls = {
        "produce": lambda: produce(bs, topic, [Record(None, b"y")], client_options=PROBE),
        "wait_for_broker": lambda: wait_for_broker(bs, wait_s=1, client_options=PROBE),
        "high_watermarks": lambda: high_watermarks(bs, topic, [0], client_options=PROBE),
        "event producer": lambda: EventProducer(bs, SchemaStore.open(lake), client_options=PROBE),
        "republish": lambda: republish(
            lake, topic, bs, to_topic=f"{topic}-r", client_options=PROBE
        ),
        "ingest": lambda: Ingester(
            IngestOptions(bootstrap_servers=bs, topics=(topic,), lake=lake, client_options=PROBE)
        ).run(until_caught_up=True),
    }
    for call in calls.values():  # each refused by librdkafka: it saw the probe
        with pytest.raises(KafkaException, match="NOT-A-MECHANISM"):
            call()
    assert high_watermarks(bs, topic, [0]) == {0: (0, 1)}  # nothing was sent


def test_scoring_and_serving_pass_the_options_on(tmp_path):
    from orchestration.serving.http import create_app
    from orchestration.serving.kafka import run_scoring
    from tests.orders_data import spec

    lake = Lake(str(tmp_path / "lake"))
    with pytest.raises(KafkaException, match="NOT-A-MECHANISM"):
        run_scoring(bootstrap_servers="127.0.0.1:1", lake=lake, specs=[spec("m")], topic="t",
                    stop=threading.Event(), client_options=PROBE)  # fmt: skip
    with pytest.raises(KafkaException, match="NOT-A-MECHANISM"):
        create_app(lake, [spec("m")], bootstrap_servers="127.0.0.1:1", client_options=PROBE)


def test_settings_build_the_connection(monkeypatch):
    for key, value in SECURE.items():
        monkeypatch.setenv(key, value)
    s = load_settings()
    assert s.kafka_client() == {
        "client.rack": "eu-1",
        "sasl.oauthbearer.config": "x",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "ingest",
        "sasl.password": "hunter2-secret",
        "ssl.ca.location": "/etc/kafka/ca.pem",
    }
    options = s.ingest_options(["orders"]) if s.kafka_bootstrap_servers else None
    assert options is None  # no broker set: ingest refuses before building anything
    monkeypatch.setenv("EVENTLAKE_KAFKA_BOOTSTRAP_SERVERS", "kafka:9093")
    assert load_settings().ingest_options(["orders"]).client_options["sasl.username"] == "ingest"


@pytest.mark.parametrize(
    "env, key",
    [
        ({"EVENTLAKE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "EVENTLAKE_KAFKA_SASL_MECHANISM"),
        (
            {"EVENTLAKE_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
             "EVENTLAKE_KAFKA_SASL_MECHANISM": "PLAIN", "EVENTLAKE_KAFKA_SASL_USERNAME": "u"},
            "EVENTLAKE_KAFKA_SASL_PASSWORD",
        ),
        ({"EVENTLAKE_KAFKA_SECURITY_PROTOCOL": "TLS"}, "EVENTLAKE_KAFKA_SECURITY_PROTOCOL"),
    ],
)  # fmt: skip
def test_incomplete_security_stops_at_start_with_the_key(monkeypatch, env, key):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ConfigError) as e:
        load_settings()
    assert str(e.value).startswith(f"setting {key}:")


def test_eventlake_config_masks_secrets(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTLAKE_")}
    env.update(SECURE, EVENTLAKE_LAKE_ROOT=str(tmp_path))
    out = subprocess.run([*CLI, "config"], env=env, capture_output=True, text=True, check=True)
    assert "hunter2" not in out.stdout and "s3-secret" not in out.stdout, out.stdout
    assert "kafka_sasl_password = '**********'" in out.stdout
    assert "'aws_secret_access_key': '**********'" in out.stdout
    assert "'sasl.oauthbearer.config': '**********'" in out.stdout
    assert "kafka_sasl_username = 'ingest'" in out.stdout and "'region': 'eu'" in out.stdout
