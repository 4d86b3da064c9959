"""Asset checks for the invariants: offsets, nothing lost, schemas, promotions."""

from typing import Any

import dagster as dg
import polars as pl

from lake import SchemaRegistry, compatibility_problems, parse_schema
from lake.catalog import Lake, TableNotInLake
from lake.coverage import decode_coverage
from orchestration.assets import Topology
from orchestration.lake_resource import LakeResource
from training.registry import ModelRegistry
from training.specs import ModelSpec

__all__ = ["build_checks"]


def _offsets_check(topo: Topology, topic: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=topo.bronze(topic),
        name="offset_continuity",
        description="Every offset at most once per partition; gaps are reported (transactional "
        "topics have them for commit markers).",
    )
    def check(lake: LakeResource) -> dg.AssetCheckResult:
        try:
            frame = Lake(lake.lake_root, storage_options=lake.storage_options).scan(
                f"bronze.{topic}"
            )
        except TableNotInLake:
            return dg.AssetCheckResult(passed=True, metadata={"rows": 0})
        stats = (
            frame.group_by("partition")
            .agg(
                pl.len().alias("rows"),
                pl.col("offset").n_unique().alias("distinct"),
                pl.col("offset").min().alias("first"),
                pl.col("offset").max().alias("last"),
            )
            .sort("partition")
            .collect()
        )
        dups = int((stats["rows"] - stats["distinct"]).sum())
        gaps = int((stats["last"] - stats["first"] + 1 - stats["distinct"]).sum())
        return dg.AssetCheckResult(
            passed=dups == 0 and gaps == 0,
            severity=dg.AssetCheckSeverity.ERROR if dups else dg.AssetCheckSeverity.WARN,
            metadata={
                "duplicated_offsets": dups,
                "missing_offsets": gaps,
                "partitions": dg.MetadataValue.md(
                    "| partition | rows | offsets |\n| --- | --- | --- |\n"
                    + "\n".join(f"| {p} | {n} | {a}..{b} |" for p, n, _, a, b in stats.iter_rows())
                ),
            },
        )

    return check


def _coverage_check(topo: Topology, topic: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=topo.silver(topic),
        name="silver_plus_dead_letters_equal_bronze",
        description="Invariant 2: every bronze offset up to the decode cursor is in exactly one "
        "of silver or dead letters.",
    )
    def check(lake: LakeResource) -> dg.AssetCheckResult:
        so = lake.storage_options
        cov = decode_coverage(lake.lake_root, topic, decoded_only=True, storage_options=so)
        missing = sum(len(c.missing) for c in cov)
        doubled = sum(len(c.duplicated) for c in cov)
        return dg.AssetCheckResult(
            passed=all(c.ok for c in cov),
            metadata={
                "bronze": sum(c.bronze for c in cov),
                "silver": sum(c.silver for c in cov),
                "dead_letters": sum(c.dead_letters for c in cov),
                "missing": missing,
                "in_both_or_twice": doubled,
            },
        )

    return check


def _schema_check(topo: Topology, topic: str) -> dg.AssetChecksDefinition:
    subject = f"{topic}-value"

    @dg.asset_check(
        asset=topo.silver(topic),
        name="schema_compatibility",
        description="Each registered version of the subject is compatible with the earlier ones "
        "under the subject's compatibility level.",
    )
    def check(lake: LakeResource) -> dg.AssetCheckResult:
        registry = SchemaRegistry.open(lake.lake_root, storage_options=lake.storage_options)
        try:
            history = registry.history(subject)
        except KeyError:
            return dg.AssetCheckResult(passed=True, metadata={"versions": 0})
        level = registry.compatibility(subject) or "BACKWARD"
        parsed = [parse_schema(text) for text in history]
        problems: list[str] = []
        for i in range(1, len(parsed)):
            problems += [
                f"v{i + 1}: {p}" for p in compatibility_problems(parsed[i], parsed[:i], level)
            ]
        return dg.AssetCheckResult(
            passed=not problems,
            metadata={
                "versions": len(history),
                "level": level,
                "problems": "; ".join(problems) or "none",
            },
        )

    return check


def _champion_check(topo: Topology, spec: ModelSpec) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=topo.model(spec, "champion"),
        name="champion_not_worse_than_challenger",
        description="No promotion made the served model worse on its holdout.",
    )
    def check(lake: LakeResource) -> dg.AssetCheckResult:
        decisions = ModelRegistry(lake.lake_root, storage_options=lake.storage_options).decisions(
            spec.name
        )
        promoted = decisions.filter(pl.col("promoted") & pl.col("champion_score").is_not_null())
        metric = spec.make_metric()
        worse: list[Any] = []
        for r in promoted.iter_rows(named=True):
            gain = r["challenger_score"] - r["champion_score"]
            if (gain < 0) if metric.bigger_is_better else (gain > 0):
                worse.append(r["challenger"])
        return dg.AssetCheckResult(
            passed=not worse,
            metadata={"decisions": decisions.height, "worse_promotions": str(worse)},
        )

    return check


def build_checks(topo: Topology) -> list[dg.AssetChecksDefinition]:
    """Every check of the pipeline for ``topo``."""
    out = [_offsets_check(topo, t) for t in topo.topics]
    out += [_coverage_check(topo, t) for t in topo.topics]
    out += [_schema_check(topo, t) for t in topo.topics]
    out += [_champion_check(topo, s) for s in topo.specs]
    return out
