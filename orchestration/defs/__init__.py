"""eventlake's Dagster definitions, built from the settings and the model specs.

One module a part: :mod:`~orchestration.defs.topology` (what the assets are
for, and their keys), :mod:`~orchestration.defs.lake_assets` (bronze, silver,
dead letters), :mod:`~orchestration.defs.feature_assets`,
:mod:`~orchestration.defs.model_assets`, :mod:`~orchestration.defs.checks`,
:mod:`~orchestration.defs.jobs`, :mod:`~orchestration.defs.automation`
(schedules, sensors), :mod:`~orchestration.defs.resources` and
:mod:`~orchestration.defs.reports` (bronze commits reported by the ingester).
"""

from __future__ import annotations

import datetime as dt
import warnings
from typing import Any

import dagster as dg

from lake import Lake
from orchestration.defs.automation import build_automation
from orchestration.defs.checks import build_checks
from orchestration.defs.feature_assets import features_asset
from orchestration.defs.jobs import (
    erase_job,
    maintenance_job,
    release_job,
    replay_job,
    republish_job,
)
from orchestration.defs.lake_assets import bronze_asset, dead_letters_asset, silver_asset
from orchestration.defs.model_assets import model_assets
from orchestration.defs.resources import LakeResource
from orchestration.defs.topology import Topology
from orchestration.settings import Settings
from orchestration.spec_loader import load_definitions

__all__ = ["LakeResource", "Topology", "build_assets", "build_checks", "build_definitions"]

# Single-run backfills are what a range rebuild needs; the parameter is marked beta.
warnings.filterwarnings("ignore", category=dg.BetaWarning, message=".*backfill_policy.*")


def build_assets(
    topo: Topology, partitions: dg.PartitionsDefinition, lake: Lake | None = None
) -> list[Any]:
    """Every asset of the pipeline for ``topo`` (with ``lake``, the models' plots as they
    are now inline in their descriptions)."""
    out: list[Any] = [bronze_asset(t) for t in topo.topics]
    out += [silver_asset(topo, s, partitions) for s in topo.subjects]
    out.append(dead_letters_asset(topo))
    out += [features_asset(topo, fs, partitions) for fs in topo.feature_sets]
    for spec in topo.specs:
        out += model_assets(topo, spec, partitions, lake)
    return out


def build_definitions(settings: Settings) -> dg.Definitions:
    """Assets, checks, jobs, schedules and sensors for the lake of ``settings``.

    Topics and subjects come from the registered models' feature sets and from
    the tables already in the lake (:meth:`Topology.discover`).

    >>> defs = build_definitions(Settings(lake_root="/nonexistent"))
    >>> keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    >>> {"bronze/order_placed", "silver/order_placed-value", "models/eta/online"} <= keys
    True
    """
    specs = load_definitions(settings.definitions)
    topo = Topology.discover(specs, settings.lake(), settings.subject_strategy)
    # Days from the first the lake holds (or the one set) through today, which live
    # ingest is writing: the partitions are the lake's days, none missing for nothing.
    start = settings.partitions_start or str(topo.first_day or dt.datetime.now(dt.UTC).date())
    partitions = dg.DailyPartitionsDefinition(start_date=start, timezone="UTC", end_offset=1)
    jobs, schedules, sensors = build_automation(topo)
    return dg.Definitions(
        assets=build_assets(topo, partitions, settings.lake()),
        asset_checks=build_checks(topo),
        jobs=[replay_job, republish_job, erase_job, maintenance_job, release_job, *jobs],
        schedules=schedules,
        sensors=sensors,
        resources={"lake": LakeResource.from_settings(settings)},
    )
