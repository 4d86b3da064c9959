"""Asset checks for the invariants; each calls the library function that states it.

- ``offset_continuity`` (bronze): :func:`lake.offset_continuity`.
- ``silver_plus_dead_letters_equal_bronze`` (bronze): :func:`lake.decode_coverage`.
- ``schema_compatibility`` (silver): :meth:`lake.SchemaStore.history_problems`.
- ``expectations`` (silver): the subject's rows of :func:`lake.read_quality`.
- ``incremental_equals_batch`` (features): :func:`features.differences`.
- ``champion_not_worse_than_challenger``: :func:`training.gain` of each promotion.
"""

import datetime as dt
from typing import Any

import dagster as dg
import polars as pl

from features import FeatureSet, differences, late_days
from lake import SchemaNotFound, SchemaStore, decode_coverage, offset_continuity, read_quality
from lake.names import DATE
from lake.names import features as features_table
from orchestration.defs.resources import LakeResource
from orchestration.defs.topology import Topology
from training import ModelRegistry, ModelSpec, gain

__all__ = ["build_checks"]


def _offsets_check(topo: Topology, topic: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=topo.bronze(topic),
        name="offset_continuity",
        description="Every offset at most once per partition; gaps are reported (transactional "
        "topics have them for commit markers).",
    )
    def check(lake: LakeResource) -> dg.AssetCheckResult:
        parts = offset_continuity(lake.handle(), topic)
        dups = sum(p.duplicated for p in parts)
        gaps = sum(p.missing for p in parts)
        return dg.AssetCheckResult(
            passed=dups == 0 and gaps == 0,
            severity=dg.AssetCheckSeverity.ERROR if dups else dg.AssetCheckSeverity.WARN,
            metadata={
                "duplicated_offsets": dups,
                "missing_offsets": gaps,
                "partitions": dg.MetadataValue.md(
                    "| partition | rows | offsets |\n| --- | --- | --- |\n"
                    + "\n".join(
                        f"| {p.partition} | {p.rows} | {p.first}..{p.last} |" for p in parts
                    )
                ),
            },
        )

    return check


def _coverage_check(topo: Topology, topic: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=topo.bronze(topic),
        name="silver_plus_dead_letters_equal_bronze",
        description="Invariant 2: every bronze offset up to the decode cursor is in exactly one "
        "of silver or dead letters.",
    )
    def check(lake: LakeResource) -> dg.AssetCheckResult:
        cov = decode_coverage(lake.handle(), topic, decoded_only=True)
        return dg.AssetCheckResult(
            passed=all(c.ok for c in cov),
            metadata={
                "bronze": sum(c.bronze for c in cov),
                "silver": sum(c.silver for c in cov),
                "quarantined": sum(c.dead_letters for c in cov),
                "missing": sum(len(c.missing) for c in cov),
                "in_both_or_twice": sum(len(c.duplicated) for c in cov),
            },
        )

    return check


def _schema_check(topo: Topology, subject: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=topo.silver(subject),
        name="schema_compatibility",
        description="Each registered version of the subject is compatible with the earlier ones "
        "under the subject's compatibility level.",
    )
    def check(lake: LakeResource) -> dg.AssetCheckResult:
        store = SchemaStore.open(lake.handle())
        try:
            versions = len(store.versions(subject))
        except SchemaNotFound:
            return dg.AssetCheckResult(passed=True, metadata={"versions": 0})
        problems = store.history_problems(subject)
        return dg.AssetCheckResult(
            passed=not problems,
            metadata={
                "versions": versions,
                "level": str(store.compatibility(subject)),
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
        decisions = ModelRegistry(lake.handle()).decisions(spec.name)
        promoted = decisions.filter(pl.col("promoted") & pl.col("champion_score").is_not_null())
        metric = spec.make_metric()
        worse: list[Any] = [
            r["challenger"]
            for r in promoted.iter_rows(named=True)
            if gain(metric, r["challenger_score"], r["champion_score"]) < 0
        ]
        return dg.AssetCheckResult(
            passed=not worse,
            metadata={"decisions": decisions.height, "worse_promotions": str(worse)},
        )

    return check


def _features_check(topo: Topology, fs: FeatureSet) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=topo.features(fs),
        name="incremental_equals_batch",
        description="The incremental rows of the newest day, and of every day with rows of "
        "late events, equal a batch recomputation of that day (backfill the days it names).",
    )
    def check(lake: LakeResource) -> dg.AssetCheckResult:
        handle = lake.handle()
        name = features_table(fs.name)
        if not handle.exists(name):
            return dg.AssetCheckResult(passed=True, metadata={"days": "none yet"})
        newest = handle.scan(name).select(pl.col(DATE).max()).collect().item()
        days = sorted({newest, *late_days(handle, fs)})
        wrong = {str(d): len(differences(handle, fs, d)) for d in days}
        bad = [d for d, n in wrong.items() if n]
        return dg.AssetCheckResult(
            passed=not bad,
            metadata={
                "days_checked": ", ".join(wrong),
                "rows_differing": sum(wrong.values()),
                "backfill": ", ".join(bad) or "nothing",
            },
        )

    return check


QUALITY_WINDOW = dt.timedelta(hours=24)


def _quality_check(topo: Topology, subject: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=topo.silver(subject),
        name="expectations",
        description="The subject's data-quality expectations over the last 24 hours of ingest: "
        "records judged and failed per expectation (error failures are in dead letters).",
    )
    def check(lake: LakeResource) -> dg.AssetCheckResult:
        declared = lake.expectations()
        names = [e.name for e in declared.of(subject)] if declared else []
        since = dt.datetime.now(dt.UTC) - QUALITY_WINDOW
        rows = pl.DataFrame(read_quality(lake.handle(), subject=subject, since=since))
        per = (
            rows.group_by("expectation", "check", "severity")
            .agg(pl.col("records").sum(), pl.col("failed").sum(), pl.col("example").last())
            .sort("expectation")
        )
        judged = 0  # every expectation judges the same records: count one
        if rows.height:
            judged = int(
                rows.filter(pl.col("expectation") == rows["expectation"][0])["records"].sum()
            )
        errors = per.filter((pl.col("severity") == "error") & (pl.col("failed") > 0)).height
        warns = per.filter((pl.col("severity") == "warn") & (pl.col("failed") > 0)).height
        table = "\n".join(
            f"| {r['expectation']} | {r['check']} | {r['severity']} | {r['records']} | "
            f"{r['failed']} | {r['example'] or ''} |"
            for r in per.iter_rows(named=True)
        )
        return dg.AssetCheckResult(
            passed=errors == 0 and warns == 0,
            severity=dg.AssetCheckSeverity.ERROR if errors else dg.AssetCheckSeverity.WARN,
            metadata={
                "declared": ", ".join(names) or "none",
                "records_judged": judged,
                "failed_records": int(rows["failed"].sum()) if rows.height else 0,
                "by_expectation": dg.MetadataValue.md(
                    "| expectation | check | severity | judged | failed | example |\n"
                    "| --- | --- | --- | --- | --- | --- |\n" + table
                ),
            },
        )

    return check


def build_checks(topo: Topology) -> list[dg.AssetChecksDefinition]:
    """Every check of the pipeline for ``topo``."""
    out = [_offsets_check(topo, t) for t in topo.topics]
    out += [_coverage_check(topo, t) for t in topo.topics]
    out += [_schema_check(topo, s) for s in topo.subjects]
    out += [_quality_check(topo, s) for s in topo.subjects]
    out += [_features_check(topo, fs) for fs in topo.feature_sets]
    out += [_champion_check(topo, s) for s in topo.specs]
    return out
