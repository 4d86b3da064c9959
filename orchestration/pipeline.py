"""The Dagster ``Definitions`` of eventlake, built from the settings and the model specs."""

from __future__ import annotations

import dagster as dg

from lake.catalog import Lake
from orchestration.assets import Topology, build_assets
from orchestration.automation import build_automation
from orchestration.checks import build_checks
from orchestration.lake_resource import LakeResource
from orchestration.settings import Settings
from orchestration.spec_loader import load_definitions
from training.specs import model_specs

__all__ = ["build_definitions"]


def build_definitions(settings: Settings) -> dg.Definitions:
    """Assets, checks, jobs, schedules and sensors for the lake of ``settings``.

    Topics come from the registered models' feature sets and from the bronze
    tables already in the lake.

    >>> defs = build_definitions(Settings(lake_root="/nonexistent"))
    >>> keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    >>> {"bronze/order_placed", "silver/order_placed-value", "models/eta/online"} <= keys
    True
    """
    load_definitions(settings.definitions)
    lake = Lake(settings.lake_root, storage_options=dict(settings.storage_options) or None)
    bronze = [n.split(".", 1)[1] for n in lake.names() if n.startswith("bronze.")]
    topo = Topology(model_specs(), bronze)
    partitions = dg.DailyPartitionsDefinition(start_date=settings.partitions_start, timezone="UTC")
    jobs, schedules, sensors = build_automation(topo)
    return dg.Definitions(
        assets=build_assets(topo, partitions),
        asset_checks=build_checks(topo),
        jobs=jobs,
        schedules=schedules,
        sensors=sensors,
        resources={"lake": LakeResource.from_settings(settings)},
    )
