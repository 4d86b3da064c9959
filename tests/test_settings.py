"""Configuration: environment, config file, precedence, and errors that name the key."""

from __future__ import annotations

import pytest

from orchestration import ConfigError, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    import os

    for key in list(os.environ):
        if key.startswith("EVENTLAKE_"):
            monkeypatch.delenv(key)


def test_defaults():
    s = load_settings()
    assert (s.lake_root, s.kafka_bootstrap_servers, s.batch_max_latency_ms) == ("./lake", None, 250)


def test_environment_variables_are_read_and_typed(monkeypatch):
    monkeypatch.setenv("EVENTLAKE_LAKE_ROOT", "/data/lake")
    monkeypatch.setenv("EVENTLAKE_KAFKA_BOOTSTRAP_SERVERS", "k1:9092,k2:9092")
    monkeypatch.setenv("EVENTLAKE_BATCH_MAX_RECORDS", "5000")
    monkeypatch.setenv("EVENTLAKE_KAFKA_CONSUMER_OPTIONS", '{"fetch.wait.max.ms": 50}')
    s = load_settings()
    assert s.lake_root == "/data/lake"
    assert s.batch_max_records == 5000
    opts = s.ingest_options(["orders"])
    assert opts.bootstrap_servers == "k1:9092,k2:9092"
    assert opts.consumer_options == {"fetch.wait.max.ms": 50}


def test_config_file_then_environment_then_flags(tmp_path, monkeypatch):
    cfg = tmp_path / "eventlake.toml"
    cfg.write_text(
        'lake_root = "/from/file"\nbatch_max_records = 7\n'
        '[storage_options]\nAWS_REGION = "eu-west-1"\n'
    )
    s = load_settings(str(cfg))
    assert (s.lake_root, s.batch_max_records, s.storage_options) == (
        "/from/file",
        7,
        {"AWS_REGION": "eu-west-1"},
    )
    monkeypatch.setenv("EVENTLAKE_BATCH_MAX_RECORDS", "8")
    assert load_settings(str(cfg)).batch_max_records == 8
    assert load_settings(str(cfg), batch_max_records=9).batch_max_records == 9
    monkeypatch.setenv("EVENTLAKE_CONFIG", str(cfg))
    assert load_settings().lake_root == "/from/file"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"EVENTLAKE_BATCH_MAX_RECORDS": "0"},
            "setting EVENTLAKE_BATCH_MAX_RECORDS: Input should "
            "be greater than or equal to 1 (got '0')",
        ),
        (
            {"EVENTLAKE_CREATE_TOPICS": "perhaps"},
            "setting EVENTLAKE_CREATE_TOPICS: Input should be a valid boolean",
        ),
        ({"EVENTLAKE_METRICS_PORT": "70000"}, "setting EVENTLAKE_METRICS_PORT"),
        ({"EVENTLAKE_KAFKA_CONSUMER_OPTIONS": "{not json"}, "EVENTLAKE_KAFKA_CONSUMER_OPTIONS"),
        (
            {"EVENTLAKE_LAKEROOT": "/typo"},
            "setting EVENTLAKE_LAKEROOT: unknown setting; known ones: EVENTLAKE_BATCH_MAX_BYTES",
        ),
    ],
)
def test_bad_environment_stops_with_the_key_named(monkeypatch, env, message):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ConfigError) as e:
        load_settings()
    assert message in str(e.value)


def test_bad_config_file_names_the_key(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("lake_rot = 'x'\n")
    with pytest.raises(ConfigError, match=r"setting lake_rot \(in .*c.toml\): unknown setting"):
        load_settings(str(cfg))
    cfg.write_text("batch_max_bytes = -1\n")
    with pytest.raises(ConfigError, match="setting batch_max_bytes: Input should be greater"):
        load_settings(str(cfg))
    cfg.write_text("this is = not toml [")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_settings(str(cfg))
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(str(tmp_path / "missing.toml"))


def test_ingest_without_a_broker_says_how_to_get_one():
    with pytest.raises(
        ConfigError, match=r"EVENTLAKE_KAFKA_BOOTSTRAP_SERVERS: not set.*eventlake broker"
    ):
        load_settings().ingest_options(["orders"])


def test_exactly_once_options_cannot_be_overridden(monkeypatch):
    monkeypatch.setenv("EVENTLAKE_KAFKA_BOOTSTRAP_SERVERS", "b:9092")
    monkeypatch.setenv("EVENTLAKE_KAFKA_CONSUMER_OPTIONS", '{"enable.auto.commit": true}')
    with pytest.raises(
        ConfigError,
        match=r"KAFKA_CONSUMER_OPTIONS: consumer option 'enable\.auto\.commit' cannot",
    ):
        load_settings().ingest_options(["orders"])
