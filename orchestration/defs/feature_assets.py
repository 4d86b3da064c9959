"""``features/<set>``: daily partitions computed by the batch path."""

import dagster as dg

from features import FeatureSet, Label, compute_features
from lake.names import features
from orchestration.defs.lake_assets import EAGER
from orchestration.defs.metadata import days, days_metadata
from orchestration.defs.resources import LakeResource
from orchestration.defs.topology import Topology, subject_of

__all__ = ["features_asset"]


def features_asset(
    topo: Topology, fs: FeatureSet, partitions: dg.PartitionsDefinition
) -> dg.AssetsDefinition:
    """The feature set ``fs``, a range of days at a time."""
    deps = [topo.silver(subject_of(fs.source))]
    if isinstance(fs.label, Label):
        deps.append(topo.silver(subject_of(fs.label.table)))

    @dg.asset(
        key=topo.features(fs),
        deps=deps,
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        automation_condition=EAGER,
        group_name="features",
        kinds={"polars", "delta"},
        description=(
            f"Feature set `{fs.name}` ({', '.join(fs.feature_names)}) of `{fs.source}`, "
            "one row per event, point in time, with its label once it has arrived."
        ),
    )
    def feature_set(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        start, end = days(context)
        handle = lake.handle()
        n = compute_features(handle, fs, start, end)
        meta = days_metadata(handle, features(fs.name), start, end)
        return dg.MaterializeResult(metadata={**meta, "rows_written": n})

    return feature_set
