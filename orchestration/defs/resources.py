"""The Dagster resource every eventlake asset, check, sensor and job uses: the lake."""

import json
from functools import partial

import dagster as dg

from ingest import Expectations, SchemaResolver
from lake import Lake, SchemaStore, silver_window
from lake.names import SubjectStrategy
from orchestration.settings import Settings, load_settings
from orchestration.spec_loader import load_model
from training import ModelSpec

__all__ = ["LakeResource"]


class LakeResource(dg.ConfigurableResource):
    """The lake, the broker, and the model definitions, from eventlake's settings."""

    lake_root: str
    kafka_bootstrap_servers: str | None = None
    registry_url: str | None = None
    subject_strategy: str = "topic"
    storage_options_json: str = "{}"
    definitions: str = "orchestration.demo.definitions"
    holdout_days: float = 1.0
    retrain_window_days: float = 7.0
    promotion_margin: float = 0.0
    expectations_json: str = "{}"

    @classmethod
    def from_settings(cls, settings: Settings) -> "LakeResource":
        """The resource for ``settings`` (what ``eventlake config`` prints)."""
        return cls(
            lake_root=settings.lake_root,
            kafka_bootstrap_servers=settings.kafka_bootstrap_servers,
            registry_url=settings.registry_url,
            subject_strategy=settings.subject_strategy,
            storage_options_json=json.dumps(dict(settings.storage_options)),
            definitions=settings.definitions,
            holdout_days=settings.holdout_days,
            retrain_window_days=settings.retrain_window_days,
            promotion_margin=settings.promotion_margin,
            expectations_json=json.dumps(settings.expectations),
        )

    def kafka_client(self) -> dict[str, str | int | float | bool]:
        """The Kafka connection properties (security, credentials), read from the
        settings when needed: secrets never sit in the resource's config, which the
        Dagster UI shows."""
        return load_settings().kafka_client()

    def handle(self) -> Lake:
        """The lake handle (root and storage options)."""
        return Lake(self.lake_root, storage_options=json.loads(self.storage_options_json) or None)

    @property
    def strategy(self) -> SubjectStrategy:
        """The subject name strategy."""
        return self.subject_strategy  # type: ignore[return-value]

    def resolver(self) -> SchemaResolver:
        """Writer schemas by id: the lake's schema registry (or the external one)."""
        return SchemaResolver(SchemaStore.open(self.handle()), self.registry_url)

    def expectations(self) -> Expectations | None:
        """The data-quality expectations declared in the settings (None: none)."""
        lake = self.handle()
        declared = json.loads(self.expectations_json)
        return Expectations.parse(declared, history=partial(silver_window, lake)) or None

    def spec(self, name: str) -> ModelSpec:
        """The registered model spec ``name``."""
        return load_model(self.definitions, name)
