"""The Dagster resource every eventlake asset, check and job uses: where the lake is."""

import json

import dagster as dg

from ingest.schema_resolver import SchemaResolver
from lake import SchemaRegistry
from orchestration.settings import Settings
from orchestration.spec_loader import load_definitions
from training.specs import ModelSpec, model_spec

__all__ = ["LakeResource"]


class LakeResource(dg.ConfigurableResource):
    """The lake root, the broker, and the model definitions, from eventlake's settings."""

    lake_root: str
    kafka_bootstrap_servers: str | None = None
    registry_url: str | None = None
    subject_strategy: str = "topic"
    storage_options_json: str = "{}"
    definitions: str = "orchestration.demo_definitions"
    holdout_days: float = 1.0
    retrain_window_days: float = 7.0
    promotion_margin: float = 0.0

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
        )

    @property
    def storage_options(self) -> dict[str, str] | None:
        """Object-store options of the lake, None when there are none."""
        return json.loads(self.storage_options_json) or None

    def resolver(self) -> SchemaResolver:
        """Writer schemas by id: the lake's registry (or the external one)."""
        registry = SchemaRegistry.open(self.lake_root, storage_options=self.storage_options)
        return SchemaResolver(registry, self.registry_url)

    def spec(self, name: str) -> ModelSpec:
        """The registered model spec ``name``."""
        load_definitions(self.definitions)
        return model_spec(name)
