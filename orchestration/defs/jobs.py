"""The operator's jobs with typed config: replay, re-publish, erasure, maintenance,
releases (launch, promote, roll back a model version)."""

import datetime as dt
from typing import Literal

import dagster as dg

from ingest import rebuild_silver, republish
from lake import DEFAULT_RETENTION_HOURS, maintain_lake, subject_topics
from orchestration.defs.resources import LakeResource
from orchestration.erasure import erase_everywhere
from orchestration.settings import load_settings
from orchestration.spec_loader import load_definitions
from training import ModelRegistry, os_user
from training.release import launch, promote, rollback

__all__ = ["erase_job", "maintenance_job", "release_job", "replay_job", "republish_job"]


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
    models: Literal["retrain", "list"] = "retrain"


class MaintenanceConfig(dg.Config):
    """Compaction, checkpoint and vacuum of every table."""

    compact: bool = True
    vacuum: bool = True
    retention_hours: float = DEFAULT_RETENTION_HOURS


class ReleaseConfig(dg.Config):
    """Launch a challenger (shadow or canary), end a launch, promote or roll back. Recorded
    in the model registry with who (``by``, default the run's OS user), when and why."""

    model: str
    action: Literal["launch", "promote", "rollback"]
    mode: Literal["shadow", "canary", "none"] = "shadow"  # launch only
    version: int | None = None  # the challenger (launch) or the new champion (promote)
    fraction: float = 0.0  # canary only: share of entities, (0, 1]
    by: str = ""
    reason: str = ""


@dg.op
def release_op(context: dg.OpExecutionContext, config: ReleaseConfig, lake: LakeResource) -> None:
    registry = ModelRegistry(lake.handle())
    by = config.by or f"{os_user()} (dagster run {context.run_id[:8]})"
    if config.action == "launch":
        done = launch(registry, config.model, config.mode, challenger=config.version,
                      fraction=config.fraction, by=by, reason=config.reason)  # fmt: skip
        context.log.info(f"{config.model}: launch {done.mode} of v{done.challenger}")
    elif config.action == "promote":
        if config.version is None:
            raise dg.Failure("promote needs `version`: the version to make champion")
        promote(registry, config.model, config.version, by=by, reason=config.reason)
        context.log.info(f"{config.model}: champion is v{config.version}")
    else:
        v = rollback(registry, config.model, by=by, reason=config.reason)
        context.log.info(f"{config.model}: rolled back to v{v}")


@dg.op
def replay_silver_op(
    context: dg.OpExecutionContext, config: ReplayConfig, lake: LakeResource
) -> None:
    handle, resolver = lake.handle(), lake.resolver()
    topics = subject_topics(handle, config.subject, lake.strategy)
    if not topics:
        raise dg.Failure(f"no topic is known to carry subject {config.subject!r} yet")
    for topic in topics:
        summary = rebuild_silver(
            handle,
            topic,
            resolver,
            start=dt.date.fromisoformat(config.start),
            end=dt.date.fromisoformat(config.end),
            reader_version=config.reader_version,
            subject_strategy=lake.strategy,
            subjects={config.subject},
            progress=lambda done, total: context.log.info(f"{done}/{total} records"),
            expectations=lake.expectations(),
        )
        context.log.info(f"{topic}: {summary}")


@dg.op
def republish_op(
    context: dg.OpExecutionContext, config: RepublishConfig, lake: LakeResource
) -> None:
    if not lake.kafka_bootstrap_servers:
        raise dg.Failure("no broker configured: set EVENTLAKE_KAFKA_BOOTSTRAP_SERVERS")
    summary = republish(
        lake.handle(),
        config.topic,
        lake.kafka_bootstrap_servers,
        to_topic=config.to_topic,
        from_offset=config.from_offset,
        to_offset=config.to_offset,
        client_options=lake.kafka_client(),
    )
    context.log.info(f"re-published {summary.records} records to {summary.target}")


@dg.op
def erase_op(context: dg.OpExecutionContext, config: EraseConfig, lake: LakeResource) -> None:
    report = erase_everywhere(
        lake.handle(),
        load_definitions(lake.definitions),
        where=config.where,
        key=config.key.encode() if config.key else None,
        models=config.models,
        online_store_url=load_settings().online_store_url,
        window_days=lake.retrain_window_days,
        holdout_days=lake.holdout_days,
        by=f"dagster run {context.run_id}",
    )
    context.log.info(
        f"erased {report.records} records: {report.rows_by_table}; "
        f"models trained on them: {report.models_to_retrain or 'none'}; {report.models}"
    )


@dg.op
def maintain_op(
    context: dg.OpExecutionContext, config: MaintenanceConfig, lake: LakeResource
) -> None:
    for _, report in maintain_lake(
        lake.handle(),
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


@dg.job(description="Launch, promote or roll back a model version (scorers follow live).")
def release_job() -> None:
    release_op()
