"""Jobs, schedules and sensors: retraining on a schedule and on drift, maintenance,
and the operator's jobs (replay, re-publish, erasure) with typed config.

New bronze data drives silver, features and the online model through
declarative automation (``AutomationCondition.eager()`` on those assets), so
only what is not data-driven lives here.
"""

import datetime as dt
from typing import Any

import dagster as dg

from ingest.rebuild import rebuild_silver
from ingest.republish import republish
from lake.catalog import Lake
from lake.erasure import erase
from lake.maintenance import DEFAULT_RETENTION_HOURS, maintain_lake
from orchestration.assets import Topology
from orchestration.lake_resource import LakeResource
from training.registry import ModelRegistry

__all__ = ["build_automation"]


class ReplayConfig(dg.Config):
    """Rebuild a subject's silver from bronze for a range of days."""

    subject: str
    start: str  # YYYY-MM-DD
    end: str  # YYYY-MM-DD, inclusive
    reader_version: int | None = None


class RepublishConfig(dg.Config):
    """Re-send a bronze topic to Kafka, exactly once."""

    topic: str
    to_topic: str | None = None
    from_offset: int | None = None
    to_offset: int | None = None


class EraseConfig(dg.Config):
    """Erase records everywhere: a predicate on decoded fields, or a Kafka key."""

    where: str | None = None
    key: str | None = None


class MaintenanceConfig(dg.Config):
    """Compaction, checkpoint and vacuum of every table."""

    compact: bool = True
    vacuum: bool = True
    retention_hours: float = DEFAULT_RETENTION_HOURS


@dg.op
def replay_silver_op(
    context: dg.OpExecutionContext, config: ReplayConfig, lake: LakeResource
) -> None:
    summary = rebuild_silver(
        lake.lake_root,
        config.subject.removesuffix("-value"),
        lake.resolver(),
        start=dt.date.fromisoformat(config.start),
        end=dt.date.fromisoformat(config.end),
        reader_version=config.reader_version,
        subject_strategy=lake.subject_strategy,  # type: ignore[arg-type]
        storage_options=lake.storage_options,
        progress=lambda done, total: context.log.info(f"{done}/{total} records"),
    )
    context.log.info(str(summary))


@dg.op
def republish_op(
    context: dg.OpExecutionContext, config: RepublishConfig, lake: LakeResource
) -> None:
    if not lake.kafka_bootstrap_servers:
        raise dg.Failure("no broker configured: set EVENTLAKE_KAFKA_BOOTSTRAP_SERVERS")
    summary = republish(
        lake.lake_root,
        config.topic,
        lake.kafka_bootstrap_servers,
        to_topic=config.to_topic,
        from_offset=config.from_offset,
        to_offset=config.to_offset,
        storage_options=lake.storage_options,
    )
    context.log.info(f"re-published {summary.records} records to {summary.target}")


@dg.op
def erase_op(context: dg.OpExecutionContext, config: EraseConfig, lake: LakeResource) -> None:
    report = erase(
        lake.lake_root,
        where=config.where,
        key=config.key.encode() if config.key else None,
        storage_options=lake.storage_options,
    )
    context.log.info(
        f"erased {report.records} records: {report.rows_by_table}; "
        f"retrain: {report.models_to_retrain or 'nothing'}"
    )


@dg.op
def maintain_op(
    context: dg.OpExecutionContext, config: MaintenanceConfig, lake: LakeResource
) -> None:
    catalog = Lake(lake.lake_root, storage_options=lake.storage_options)
    for _, report in maintain_lake(
        catalog,
        compact=config.compact,
        vacuum=config.vacuum,
        retention_hours=config.retention_hours,
    ):
        context.log.info(str(report))


@dg.job(description="Rebuild silver (and dead letters) from bronze for a subject and days.")
def replay_job() -> None:
    replay_silver_op()


@dg.job(description="Re-publish a bronze topic to Kafka byte for byte, exactly once.")
def republish_job() -> None:
    republish_op()


@dg.job(description="Erase matching records from every table for good, with an audit entry.")
def erase_job() -> None:
    erase_op()


@dg.job(description="Compact, checkpoint, clean the log of and vacuum every table.")
def maintenance_job() -> None:
    maintain_op()


def build_automation(topo: Topology) -> tuple[list[Any], list[Any], list[Any]]:
    """(jobs, schedules, sensors) for ``topo``."""
    jobs: list[Any] = [replay_job, republish_job, erase_job, maintenance_job]
    schedules: list[Any] = [
        dg.ScheduleDefinition(
            name="nightly_maintenance", job=maintenance_job, cron_schedule="30 2 * * *"
        )
    ]
    sensors: list[Any] = []
    for spec in topo.specs:
        retrain_job = dg.define_asset_job(
            name=f"retrain_{spec.name}",
            selection=dg.AssetSelection.assets(
                topo.model(spec, "batch"), topo.model(spec, "champion")
            ),
            description=f"Retrain {spec.name} in batch, then evaluate and promote.",
        )
        jobs.append(retrain_job)
        schedules.append(
            dg.ScheduleDefinition(
                name=f"retrain_{spec.name}_daily", job=retrain_job, cron_schedule="0 3 * * *"
            )
        )
        sensors.append(_drift_sensor(spec.name, retrain_job))
    return jobs, schedules, sensors


def _drift_sensor(model: str, job: Any) -> dg.SensorDefinition:
    @dg.sensor(
        name=f"drift_{model}",
        job=job,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Retrain {model} in batch when its online model detects drift.",
    )
    def drift_sensor(context: dg.SensorEvaluationContext, lake: LakeResource) -> dg.SensorResult:
        seen = int(context.cursor or 0)
        detections = ModelRegistry(lake.lake_root, storage_options=lake.storage_options).drift(
            model, after_version=seen
        )
        if detections.is_empty():
            return dg.SensorResult(skip_reason=f"no drift detected after v{seen}")
        newest = int(detections["version"].max())  # type: ignore[arg-type]
        first = detections.row(0, named=True)
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    run_key=f"drift-{model}-v{newest}",
                    tags={
                        "eventlake/reason": "drift",
                        "eventlake/drift_at": str(first["event_time"]),
                    },
                )
            ],
            cursor=str(newest),
        )

    return drift_sensor
