"""Models and serving: the online model, batch retraining, the champion, predictions,
live metrics.

- ``models/<m>/online``: incremental feature update and online ``partial_fit``.
- ``models/<m>/batch``: retraining from a window (scheduled, or on drift).
- ``models/<m>/champion``: challenger against champion, promotion by margin.
- ``predictions/<m>`` (external, written by `eventlake score`) and
  ``models/<m>/live_metrics``.
"""

import os
import time
from typing import Any

import dagster as dg

from features import update_features
from lake import Lake
from orchestration.defs.lake_assets import EAGER
from orchestration.defs.metadata import days
from orchestration.defs.resources import LakeResource
from orchestration.defs.topology import Topology
from orchestration.plots import inline_image, metric_plot, plot_path
from training import (
    ModelRegistry,
    ModelSpec,
    decide,
    follow_online,
    learn_online,
    live_metrics,
    retrain,
)

__all__ = ["model_assets"]

PLOT_EVERY_S = 60.0  # the online model's plot is redrawn at most this often (wall clock)


def _stale(path: str) -> bool:
    """Whether the plot at ``path`` is missing or older than :data:`PLOT_EVERY_S`."""
    return not os.path.exists(path) or time.time() - os.path.getmtime(path) > PLOT_EVERY_S


def model_assets(
    topo: Topology,
    spec: ModelSpec,
    partitions: dg.PartitionsDefinition,
    lake: Lake | None = None,
) -> list[Any]:
    """The assets of model ``spec``: online, batch, champion, predictions, live metrics.

    With ``lake``, the online model's description shows its plot as drawn when these
    definitions were loaded, so the asset page shows it without a click.
    """
    metric = type(spec.make_metric()).__name__
    plot = inline_image(plot_path(lake, spec.name), f"{metric} over event time") if lake else ""

    @dg.asset(
        key=topo.model(spec, "online"),
        deps=[topo.features(spec.feature_set)],
        automation_condition=EAGER,
        group_name="models",
        kinds={"river"},
        description=(
            f"`{spec.name}` learning online (partial_fit in event order, predict before "
            "learn) from the labeled rows since its last version."
            + (
                f"\n\n{metric} over event time, as of when these definitions loaded (the newest "
                f"is the `plot_file` of the latest materialization):\n\n{plot}"
                if plot
                else ""
            )
        ),
    )
    def online(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        handle = lake.handle()
        update = update_features(handle, spec.feature_set)
        run = learn_online(handle, spec)
        registry = ModelRegistry(handle)
        if run.version is not None:  # the online line serves its newest state
            follow_online(registry, spec.name, run.version.version)
        mv = run.version or registry.latest(spec.name, kind="online")
        meta: dict[str, Any] = {
            "feature_rows_added": update.new_rows,
            "labels_arrived": update.relabeled,
            "rows_learned": run.rows,
            "drift_detections": len(run.drifts),
        }
        if mv is not None:
            png = plot_path(handle, spec.name)
            if _stale(png):  # a report over all history: not on every increment
                metric_plot(handle, spec.name)
            meta |= {
                "version": mv.version,
                # Text, not a number: Dagster would plot it over the wall-clock time of
                # materializations; live_metrics plots it over days of event time.
                metric: dg.MetadataValue.text(f"{mv.metrics.get(metric, float('nan')):.4f}"),
                "event_time_to": str(mv.event_time_to),
                "plot_file": dg.MetadataValue.path(png),
            }
        return dg.MaterializeResult(metadata=meta)

    @dg.asset(
        key=topo.model(spec, "batch"),
        deps=[topo.features(spec.feature_set)],
        group_name="models",
        kinds={"river"},
        description=(
            f"`{spec.name}` retrained from scratch on a window of history before the holdout "
            "(scheduled, and on drift)."
        ),
    )
    def batch(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        handle = lake.handle()
        update_features(handle, spec.feature_set)
        mv = retrain(
            handle, spec, window_days=lake.retrain_window_days, holdout_days=lake.holdout_days
        )
        return dg.MaterializeResult(
            metadata={
                "version": mv.version,
                "rows": mv.rows,
                metric: dg.MetadataValue.text(f"{mv.metrics[metric]:.4f}"),
                f"holdout_{metric}": dg.MetadataValue.text(
                    f"{mv.metrics[f'holdout_{metric}']:.4f}"
                ),
                "window": f"{mv.event_time_from} .. {mv.event_time_to}",
            }
        )

    @dg.asset(
        key=topo.model(spec, "champion"),
        deps=[topo.model(spec, "online"), topo.model(spec, "batch")],
        group_name="models",
        kinds={"river"},
        description=(
            f"Which `{spec.name}` version serves: the online line follows its newest state; "
            "a new batch version is launched as its shadow and promoted when it beats what "
            "serves on live labeled traffic by the margin (and rolled back when it stops); "
            "the first champion is picked on the holdout."
        ),
    )
    def champion(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        handle = lake.handle()
        registry = ModelRegistry(handle)
        decisions = decide(
            handle, spec, holdout_days=lake.holdout_days, margin=lake.promotion_margin
        )
        for d in decisions:
            context.log.info(f"v{d.challenger} vs {d.champion}: {d.reason}")
        current = registry.alias(spec.name, "champion")
        return dg.MaterializeResult(
            metadata={
                "champion": current if current is not None else "none",
                "shadow": _shadow(registry.launch(spec.name)),
                "decisions": dg.MetadataValue.md(
                    "| challenger | champion | challenger score | champion score | promoted | why |"
                    "\n| --- | --- | --- | --- | --- | --- |\n"
                    + "\n".join(
                        f"| v{d.challenger} | {d.champion} | {_score(d.challenger_score)} | "
                        f"{_score(d.champion_score)} | "
                        f"{d.promoted} | {d.reason} |"
                        for d in decisions
                    )
                ),
            }
        )

    predictions = dg.AssetSpec(
        key=topo.predictions(spec),
        deps=[topo.model(spec, "champion")],
        description=f"Predictions of `{spec.name}`, written by `eventlake score`.",
        group_name="serving",
        kinds={"kafka", "delta"},
    )

    @dg.asset(
        key=topo.model(spec, "live_metrics"),
        deps=[topo.predictions(spec), topo.features(spec.feature_set)],
        partitions_def=partitions,
        group_name="serving",
        kinds={"polars"},
        description=(
            f"`{spec.name}` {metric} of what was served, per day of event time (the days a "
            "prediction's event happened), on predictions whose label arrived; by version "
            "and role in the table. Its plots run over those days."
        ),
    )
    def live(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        start, end = days(context)
        handle = lake.handle()
        df = live_metrics(handle, spec, (start, end))
        if df.is_empty():
            return dg.MaterializeResult(metadata={"days": f"{start}..{end}", "labeled": 0})
        served = live_metrics(handle, spec, (start, end), by_version=False)
        meta: dict[str, Any] = {"days": f"{start}..{end}", "labeled": int(df["labeled"].sum())}
        for role, m in served.select("role", metric).iter_rows():
            meta[f"{metric}_{role}"] = float(m)  # e.g. MAE_champion: what was served
        meta["by_version"] = dg.MetadataValue.md(
            f"| version | role | labeled | {metric} | mean error |\n"
            + "| --- | --- | --- | --- | --- |\n"
            + "\n".join(
                f"| v{v} | {r} | {n} | {m:.4f} | {e:.4f} |" for v, r, n, m, e in df.iter_rows()
            )
        )
        return dg.MaterializeResult(metadata=meta)

    return [online, batch, champion, predictions, live]


def _score(value: float | None) -> str:
    return "-" if value is None or value != value else f"{value:.4f}"  # None or NaN: not scored


def _shadow(launch: Any) -> str:
    return f"v{launch.challenger}" if launch.mode == "shadow" else "none"
