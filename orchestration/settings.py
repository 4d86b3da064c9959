"""eventlake's configuration: one settings object, read at start-up.

Sources, strongest first: keyword arguments, ``EVENTLAKE_*`` environment
variables, a TOML config file (``--config`` or ``EVENTLAKE_CONFIG``), defaults.
Field ``lake_root`` is ``EVENTLAKE_LAKE_ROOT`` in the environment and
``lake_root`` in the file. Dict settings take JSON in the environment.
Anything unknown or invalid stops start-up with a :class:`ConfigError` naming
the key. This is the only module that reads the environment.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Sequence
from contextvars import ContextVar
from functools import partial
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from ingest import Expectation, Expectations, IngestOptions, consumer_config
from lake import Lake, silver_window
from lake.names import SubjectStrategy
from orchestration.errors import ConfigError

__all__ = ["ENV_PREFIX", "Settings", "load_settings", "masked"]

ENV_PREFIX = "EVENTLAKE_"
CONFIG_ENV = "EVENTLAKE_CONFIG"
_config_file: ContextVar[str | None] = ContextVar("eventlake_config_file", default=None)


class Settings(BaseSettings):
    """Every setting of eventlake, with its default.

    >>> Settings(lake_root="/data/lake").batch_max_records
    100000
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    lake_root: str = Field("./lake", description="Root folder or URI of the Delta lake.")
    storage_options: dict[str, str] = Field(
        default_factory=dict, description="deltalake storage options (object-store credentials)."
    )
    kafka_bootstrap_servers: str | None = Field(
        None, description="Kafka bootstrap servers; unset = the embedded broker where one applies."
    )
    kafka_group_id: str = Field("eventlake-ingest", description="Consumer group of ingesters.")
    kafka_consumer_options: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="Extra librdkafka properties of ingest consumers."
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="How every Kafka client connects (librdkafka security.protocol)."
    )
    kafka_sasl_mechanism: (
        Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] | None
    ) = Field(None, description="SASL mechanism, for SASL_PLAINTEXT and SASL_SSL.")
    kafka_sasl_username: str | None = Field(None, description="SASL user name.")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password (never shown).")
    kafka_ssl_ca_location: str | None = Field(None, description="CA certificate file for TLS.")
    kafka_ssl_certificate_location: str | None = Field(
        None, description="Client certificate file (mutual TLS)."
    )
    kafka_ssl_key_location: str | None = Field(None, description="Client key file (mutual TLS).")
    kafka_ssl_key_password: SecretStr | None = Field(
        None, description="Password of the client key (never shown)."
    )
    kafka_client_options: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        description="Extra librdkafka properties of every Kafka client eventlake creates.",
    )
    create_topics: bool = Field(False, description="Create a missing topic instead of failing.")
    topic_partitions: int = Field(1, ge=1, description="Partitions of a topic eventlake creates.")
    batch_max_records: int = Field(100_000, ge=1, description="Records per bronze commit, at most.")
    batch_max_bytes: int = Field(
        32 * 1024 * 1024, ge=1, description="Key+value bytes per bronze commit, at most."
    )
    batch_max_latency_ms: int = Field(
        250, ge=1, description="Longest a record waits before its commit."
    )
    maintain_every: int = Field(
        1000, ge=0, description="Bronze commits between compactions by the ingester; 0 = never."
    )
    broker_wait_s: float = Field(
        60.0, gt=0, description="How long to retry an unreachable broker at start."
    )
    registry_url: str | None = Field(
        None, description="A Confluent-compatible schema registry; unset = eventlake's own."
    )
    decode_avro: bool = Field(
        False, description="Decode Confluent-framed Avro into silver behind each bronze commit."
    )
    subject_strategy: SubjectStrategy = Field(
        "topic", description="How a record's subject is named (Confluent's strategies)."
    )
    metrics_port: int | None = Field(
        None, ge=1, le=65535, description="Serve Prometheus metrics on this port."
    )
    metrics_host: str = Field("127.0.0.1", description="Address the metrics server binds.")
    serve_models: str = Field(
        "", description="Comma-separated models `eventlake serve` serves; empty = every one."
    )
    serve_reload_s: float = Field(
        2.0, gt=0, description="How often scorers re-read aliases and launches (seconds)."
    )
    online_store_url: str | None = Field(
        None,
        description="Redis URL of the online feature state shared by scoring processes; "
        "unset = in memory, loaded from the lake.",
    )
    definitions: str = Field(
        "orchestration.demo.definitions",
        description="Comma-separated modules that register feature sets and models.",
    )
    expectations: dict[str, list[dict[str, Any]]] = Field(
        default_factory=dict,
        description="Data-quality expectations per subject, judged on every decoded batch "
        '(see ingest.expectations); in TOML, [[expectations."orders-value"]] tables.',
    )
    partitions_start: str | None = Field(
        None,
        description="First day of the daily partitions in Dagster (YYYY-MM-DD); "
        "by default the first day the lake's bronze holds.",
    )
    holdout_days: float = Field(1.0, gt=0, description="Newest days held out for evaluation.")
    retrain_window_days: float = Field(
        7.0, gt=0, description="Days of history before the holdout a batch retrain learns."
    )
    promotion_margin: float = Field(
        0.0, ge=0, description="How much better a challenger must be to become champion."
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = _config_file.get() or os.environ.get(CONFIG_ENV)
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if path:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(path)))
        return tuple(sources)

    @field_validator("expectations")
    @classmethod
    def _expectations_parse(
        cls, value: dict[str, list[dict[str, Any]]]
    ) -> dict[str, list[dict[str, Any]]]:
        Expectations.parse(value)  # a ValueError names the subject, expectation and field
        return value

    def expectations_of(self, lake: Lake) -> Expectations | None:
        """The declared expectations, their windowed uniqueness seeded from ``lake``'s
        silver; None when none are declared."""
        declared = Expectations(self.declared_expectations(), history=partial(silver_window, lake))
        return declared or None

    def declared_expectations(self) -> tuple[Expectation, ...]:
        """The ``expectations`` setting, parsed.

        >>> Settings(expectations={"orders-value": [{"name": "km", "check": "between",
        ...     "column": "km", "min": 0}]}).declared_expectations()[0].describe()
        'km between 0 and +inf'
        """
        return tuple(
            Expectation.parse(subject, spec)
            for subject, specs in self.expectations.items()
            for spec in specs
        )

    @model_validator(mode="after")
    def _kafka_security_is_complete(self) -> Settings:
        sasl = self.kafka_security_protocol.startswith("SASL")
        if sasl and self.kafka_sasl_mechanism is None:
            raise ValueError(
                "kafka_sasl_mechanism: needed with security protocol "
                f"{self.kafka_security_protocol}; set PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 "
                "or OAUTHBEARER"
            )
        if sasl and self.kafka_sasl_mechanism != "OAUTHBEARER":
            for key in ("kafka_sasl_username", "kafka_sasl_password"):
                if getattr(self, key) is None:
                    raise ValueError(f"{key}: needed with SASL {self.kafka_sasl_mechanism}")
        return self

    def kafka_client(self) -> dict[str, str | int | float | bool]:
        """The connection properties every Kafka client gets (secrets in clear: pass
        them to clients, never print them; :func:`masked` is for showing).

        >>> c = Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="PLAIN",
        ...              kafka_sasl_username="u", kafka_sasl_password="p").kafka_client()
        >>> c["security.protocol"], c["sasl.mechanism"], c["sasl.password"]
        ('SASL_SSL', 'PLAIN', 'p')
        """
        out: dict[str, str | int | float | bool] = {}
        if self.kafka_security_protocol != "PLAINTEXT":
            out["security.protocol"] = self.kafka_security_protocol
        named: dict[str, str | SecretStr | None] = {
            "sasl.mechanism": self.kafka_sasl_mechanism,
            "sasl.username": self.kafka_sasl_username,
            "sasl.password": self.kafka_sasl_password,
            "ssl.ca.location": self.kafka_ssl_ca_location,
            "ssl.certificate.location": self.kafka_ssl_certificate_location,
            "ssl.key.location": self.kafka_ssl_key_location,
            "ssl.key.password": self.kafka_ssl_key_password,
        }
        for key, value in named.items():
            if value is not None:
                out[key] = value.get_secret_value() if isinstance(value, SecretStr) else value
        return {**self.kafka_client_options, **out}

    def lake(self) -> Lake:
        """The lake handle these settings name (root and storage options).

        >>> Settings(lake_root="/data/lake").lake()
        Lake('/data/lake')
        """
        return Lake(self.lake_root, storage_options=dict(self.storage_options) or None)

    def ingest_options(
        self,
        topics: Sequence[str] = (),
        *,
        topic_pattern: str | None = None,
        group_id: str | None = None,
    ) -> IngestOptions:
        """The :class:`ingest.IngestOptions` for ingesting ``topics`` (and topics
        matching ``topic_pattern``) with these settings.

        >>> Settings(kafka_bootstrap_servers="b:9092").ingest_options(["t"]).batch_max_latency_s
        0.25
        """
        if not self.kafka_bootstrap_servers:
            raise ConfigError(
                f"{ENV_PREFIX}KAFKA_BOOTSTRAP_SERVERS",
                "not set, and ingest needs a broker that holds the topic. Start one with "
                "`eventlake broker` and export the address it prints, or point it at your "
                "Kafka cluster",
            )
        try:
            consumer_config(
                self.kafka_bootstrap_servers, self.kafka_group_id, self.kafka_consumer_options
            )
        except ValueError as e:
            raise ConfigError(f"{ENV_PREFIX}KAFKA_CONSUMER_OPTIONS", str(e)) from None
        return IngestOptions(
            bootstrap_servers=self.kafka_bootstrap_servers,
            topics=tuple(topics),
            topic_pattern=topic_pattern,
            lake=self.lake(),
            group_id=group_id or self.kafka_group_id,
            consumer_options=dict(self.kafka_consumer_options),
            client_options=self.kafka_client(),
            batch_max_records=self.batch_max_records,
            batch_max_bytes=self.batch_max_bytes,
            batch_max_latency_s=self.batch_max_latency_ms / 1000,
            broker_wait_s=self.broker_wait_s,
            maintain_every=self.maintain_every,
            create_topic=self.create_topics,
            topic_partitions=self.topic_partitions,
            decode_avro=self.decode_avro,
            registry_url=self.registry_url,
            subject_strategy=self.subject_strategy,
            expectations=self.declared_expectations(),
        )


def load_settings(config_file: str | None = None, **overrides: Any) -> Settings:
    """Read the settings, or raise :class:`ConfigError` naming the bad key.

    ``config_file`` wins over ``EVENTLAKE_CONFIG``; ``overrides`` (e.g. from
    command-line flags, None meaning "not given") win over everything.

    >>> load_settings(lake_root="/tmp/x").lake_root
    '/tmp/x'
    >>> load_settings(batch_max_records=0)
    Traceback (most recent call last):
    ...
    orchestration.errors.ConfigError: setting batch_max_records: Input should be ...
    """
    known = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields} | {CONFIG_ENV}
    for key in sorted(os.environ):
        if key.startswith(ENV_PREFIX) and key not in known:
            raise ConfigError(key, f"unknown setting; known ones: {', '.join(sorted(known))}")
    path = config_file or os.environ.get(CONFIG_ENV)
    if path:
        _check_file(path)
    token = _config_file.set(path)
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except SettingsError as e:
        field = str(e).split('"')[1] if '"' in str(e) else "?"
        cause = e.__cause__ or e
        raise ConfigError(
            f"{ENV_PREFIX}{field.upper()}",
            f"cannot be parsed ({cause}); "
            "dict settings take JSON, e.g. '{\"fetch.wait.max.ms\": 50}'",
        ) from None
    except ValidationError as e:
        err = e.errors()[0]
        if not err["loc"]:  # a rule across settings: the message names the key first
            name, _, why = err["msg"].removeprefix("Value error, ").partition(": ")
            raise ConfigError(f"{ENV_PREFIX}{name.upper()}", why) from None
        name = ".".join(str(p) for p in err["loc"])
        env_key = f"{ENV_PREFIX}{name.split('.')[0].upper()}"
        key = env_key if env_key in os.environ else name
        got = masked(err.get("input"), name)
        raise ConfigError(key, f"{err['msg']} (got {got!r})") from None
    finally:
        _config_file.reset(token)


def _check_file(path: str) -> None:
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(CONFIG_ENV, f"config file {path!r} does not exist") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(CONFIG_ENV, f"config file {path!r} is not valid TOML: {e}") from None
    unknown = sorted(set(data) - set(Settings.model_fields))
    if unknown:
        raise ConfigError(
            f"{unknown[0]} (in {path})",
            f"unknown setting; known ones: {', '.join(sorted(Settings.model_fields))}",
        )


_SECRET = ("password", "secret", "token", "credential", "private", "sasl.oauthbearer.config")


def masked(value: Any, key: str = "") -> Any:
    """``value`` fit to print: secrets (pydantic secrets, and any entry whose key names a
    password, secret, token or credential, in nested dicts too) become ``**********``.

    >>> masked({"aws_secret_access_key": "abc", "region": "eu"})
    {'aws_secret_access_key': '**********', 'region': 'eu'}
    """
    if isinstance(value, SecretStr) or (
        value is not None and any(word in key.lower() for word in _SECRET)
    ):
        return "**********"
    if isinstance(value, dict):
        return {k: masked(v, str(k)) for k, v in value.items()}
    return value
