"""Jobs, schedules and sensors: retraining on a schedule and on drift, nightly
maintenance, and the named jobs of the data-driven assets.

New bronze data drives silver, features, dead letters and the online model through
declarative automation (``AutomationCondition.eager()`` on those assets, evaluated
by the automation sensor, on by default), so only what is not data-driven is
scheduled here. The same steps also have named jobs, so a run launched by hand or
by the demo says what it does instead of ``__ephemeral_asset_job__``.
"""

from typing import Any

import dagster as dg
import polars as pl

from orchestration.defs.jobs import maintenance_job
from orchestration.defs.resources import LakeResource
from orchestration.defs.topology import Topology
from training import ModelRegistry, ModelSpec, NothingToLearn, judge_live, training_window

__all__ = [
    "DAILY_TABLES_JOB",
    "DEAD_LETTERS_JOB",
    "MAINTENANCE_SCHEDULE",
    "build_automation",
    "drift_sensor_name",
    "judge_job_name",
    "learn_job_name",
    "live_metrics_job_name",
    "retrain_job_name",
    "retrain_schedule_name",
    "shadow_sensor_name",
]

DAILY_TABLES_JOB = "silver_and_features"  # days of event time: silver, then features
DEAD_LETTERS_JOB = "reprocess_dead_letters"
AUTOMATION_SENSOR = "eager_automation"
MAINTENANCE_SCHEDULE = "nightly_maintenance"


def live_metrics_job_name(model: str) -> str:
    """The job that measures what ``model`` served, for days of event time.

    >>> live_metrics_job_name("eta")
    'live_metrics_eta'
    """
    return f"live_metrics_{model}"


def learn_job_name(model: str) -> str:
    """The job that updates the features incrementally and learns ``model`` online.

    >>> learn_job_name("eta")
    'learn_eta'
    """
    return f"learn_{model}"


def retrain_job_name(model: str) -> str:
    """The job that retrains ``model`` in batch, then evaluates and promotes."""
    return f"retrain_{model}"


def retrain_schedule_name(model: str) -> str:
    """The daily schedule of :func:`retrain_job_name`."""
    return f"retrain_{model}_daily"


def judge_job_name(model: str) -> str:
    """The job that judges ``model``'s shadow on live traffic and promotes or rolls back.

    >>> judge_job_name("eta")
    'judge_eta'
    """
    return f"judge_{model}"


def shadow_sensor_name(model: str) -> str:
    """The sensor that asks for :func:`judge_job_name` when the shadow wins on live traffic."""
    return f"shadow_{model}"


def drift_sensor_name(model: str) -> str:
    """The sensor that retrains ``model`` when its online learner detects drift."""
    return f"drift_{model}"


def build_automation(topo: Topology) -> tuple[list[Any], list[Any], list[Any]]:
    """(jobs, schedules, sensors) for ``topo``."""
    jobs: list[Any] = [
        dg.define_asset_job(
            name=DAILY_TABLES_JOB,
            selection=dg.AssetSelection.assets(
                *(topo.silver(s) for s in topo.subjects),
                *(topo.features(fs) for fs in topo.feature_sets),
            ),
            description="Silver and features of days of event time, rebuilt from bronze.",
        ),
        dg.define_asset_job(
            name=DEAD_LETTERS_JOB,
            selection=dg.AssetSelection.assets(Topology.DEAD_LETTERS),
            description="Decode the dead letters again; those that now decode move to silver.",
        ),
    ]
    schedules: list[Any] = [
        dg.ScheduleDefinition(
            name=MAINTENANCE_SCHEDULE, job=maintenance_job, cron_schedule="30 2 * * *"
        )
    ]
    sensors: list[Any] = [
        dg.AutomationConditionSensorDefinition(
            name=AUTOMATION_SENSOR,
            target=dg.AssetSelection.all(),
            default_status=dg.DefaultSensorStatus.RUNNING,
            minimum_interval_seconds=30,
            description="Materializes silver, features, dead letters and the online models "
            "when what they read has changed (their eager automation conditions).",
        )
    ]
    for spec in topo.specs:
        jobs.append(
            dg.define_asset_job(
                name=learn_job_name(spec.name),
                selection=dg.AssetSelection.assets(topo.model(spec, "online")),
                description=f"Update the features incrementally and learn {spec.name} online.",
            )
        )
        jobs.append(
            dg.define_asset_job(
                name=live_metrics_job_name(spec.name),
                selection=dg.AssetSelection.assets(topo.model(spec, "live_metrics")),
                description=f"Measure what {spec.name} served on days of event time.",
            )
        )
        retrain_job = dg.define_asset_job(
            name=retrain_job_name(spec.name),
            selection=dg.AssetSelection.assets(
                topo.model(spec, "batch"), topo.model(spec, "champion")
            ),
            description=f"Retrain {spec.name} in batch, then evaluate and promote.",
        )
        jobs.append(retrain_job)
        schedules.append(_retrain_schedule(spec, retrain_job))
        sensors.append(_drift_sensor(spec, retrain_job))
        judge_job = dg.define_asset_job(
            name=judge_job_name(spec.name),
            selection=dg.AssetSelection.assets(topo.model(spec, "champion")),
            description=f"Judge {spec.name}'s shadow on live traffic; promote or roll back.",
        )
        jobs.append(judge_job)
        sensors.append(_shadow_sensor(spec, judge_job))
    return jobs, schedules, sensors


def _untrainable(spec: ModelSpec, lake: LakeResource) -> str | None:
    """Why a retrain of ``spec`` would find nothing to learn now (None: it would not)."""
    try:
        training_window(
            lake.handle(),
            spec,
            window_days=lake.retrain_window_days,
            holdout_days=lake.holdout_days,
        )
    except NothingToLearn as e:
        return f"nothing to retrain on yet: {e}"
    return None


def _retrain_schedule(spec: ModelSpec, job: Any) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=retrain_schedule_name(spec.name),
        job=job,
        cron_schedule="0 3 * * *",
        description=f"Retrain {spec.name} in batch every night at 03:00 (skipped, saying "
        "why, while the window before the holdout holds no labeled row).",
    )
    def retrain_schedule(
        context: dg.ScheduleEvaluationContext, lake: LakeResource
    ) -> dg.RunRequest | dg.SkipReason:
        why_not = _untrainable(spec, lake)
        if why_not:
            return dg.SkipReason(why_not)
        return dg.RunRequest(tags={"eventlake/reason": "schedule"})

    return retrain_schedule


def _drift_sensor(spec: ModelSpec, job: Any) -> dg.SensorDefinition:
    model = spec.name

    @dg.sensor(
        name=drift_sensor_name(model),
        job=job,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            f"Retrain {model} in batch when its online model detects drift that no batch "
            "version has followed yet."
        ),
    )
    def drift_sensor(context: dg.SensorEvaluationContext, lake: LakeResource) -> dg.SensorResult:
        registry = ModelRegistry(lake.handle())
        batch = registry.versions(model).filter(pl.col("kind") == "batch")["version"]
        # A detection by online version v is handled by any batch version after v, and
        # by any run this sensor requested before (its cursor).
        newest_batch = int(batch.max()) if len(batch) else 0  # type: ignore[arg-type]
        seen = max(int(context.cursor or 0), newest_batch)
        detections = registry.drift(model, after_version=seen)
        if detections.is_empty():
            return dg.SensorResult(skip_reason=f"no drift detected after v{seen}")
        why_not = _untrainable(spec, lake)
        if why_not:  # the cursor stays: the drift is retrained on once there is data
            return dg.SensorResult(skip_reason=why_not)
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


def _shadow_sensor(spec: ModelSpec, job: Any) -> dg.SensorDefinition:
    @dg.sensor(
        name=shadow_sensor_name(spec.name),
        job=job,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            f"Promotes {spec.name}'s shadow when it beats what serves on live labeled traffic "
            "by the promotion margin and two standard errors, event by event (a batch "
            "version over the online line, or the online line back over a batch version: a "
            "rollback)."
        ),
    )
    def shadow_sensor(context: dg.SensorEvaluationContext, lake: LakeResource) -> dg.SensorResult:
        judgment = judge_live(lake.handle(), spec, margin=lake.promotion_margin, apply=False)
        if judgment is None:
            return dg.SensorResult(skip_reason="no shadow, or too few of its predictions labeled")
        if not judgment.promoted:
            return dg.SensorResult(skip_reason=judgment.reason)
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    run_key=f"shadow-{spec.name}-v{judgment.champion}-v{judgment.challenger}",
                    tags={
                        "eventlake/reason": "live traffic",
                        "eventlake/judgment": judgment.reason[:200],
                    },
                )
            ]
        )

    return shadow_sensor
