"""Models and serving: the online model, batch retraining, the champion, predictions,
live metrics.

- ``models/<m>/online``: incremental feature update and online ``partial_fit``.
- ``models/<m>/batch``: retraining from a window (scheduled, or on drift).
- ``models/<m>/champion``: challenger against champion, promotion by margin.
- ``predictions/<m>`` (external, written by `eventlake score`) and
  ``models/<m>/live_metrics``.
"""

import base64
from typing import Any

import dagster as dg

from features import update_features
from orchestration.defs.lake_assets import EAGER
from orchestration.defs.resources import LakeResource
from orchestration.defs.topology import Topology
from orchestration.plots import metric_plot
from training import ModelRegistry, ModelSpec, evaluate, learn_online, live_metrics, retrain

__all__ = ["model_assets"]


def model_assets(topo: Topology, spec: ModelSpec) -> list[Any]:
    """The assets of model ``spec``: online, batch, champion, predictions, live metrics."""
    metric = type(spec.make_metric()).__name__

    @dg.asset(
        key=topo.model(spec, "online"),
        deps=[topo.features(spec.feature_set)],
        automation_condition=EAGER,
        group_name="models",
        kinds={"river"},
        description=(
            f"`{spec.name}` learning online (partial_fit in event order, predict before "
            "learn) from the labeled rows since its last version."
        ),
    )
    def online(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        handle = lake.handle()
        update = update_features(handle, spec.feature_set)
        run = learn_online(handle, spec)
        mv = run.version or ModelRegistry(handle).latest(spec.name, kind="online")
        meta: dict[str, Any] = {
            "feature_rows_added": update.new_rows,
            "labels_arrived": update.relabeled,
            "rows_learned": run.rows,
            "drift_detections": len(run.drifts),
        }
        if mv is not None:
            png = metric_plot(handle, spec.name)
            with open(png, "rb") as f:
                inline = base64.b64encode(f.read()).decode()
            meta |= {
                "version": mv.version,
                metric: float(mv.metrics.get(metric, float("nan"))),
                "event_time_to": str(mv.event_time_to),
                "plot_file": dg.MetadataValue.path(png),
                # The UI renders markdown images, data URIs included: the plot inline.
                "metric_over_event_time": dg.MetadataValue.md(
                    f"![{metric} over event time](data:image/png;base64,{inline})"
                ),
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
                metric: float(mv.metrics[metric]),
                f"holdout_{metric}": float(mv.metrics[f"holdout_{metric}"]),
                "window": f"{mv.event_time_from} .. {mv.event_time_to}",
            }
        )

    @dg.asset(
        key=topo.model(spec, "champion"),
        deps=[topo.model(spec, "online"), topo.model(spec, "batch")],
        group_name="models",
        kinds={"river"},
        description=(
            f"Which `{spec.name}` version serves: the newest online and batch versions "
            "are scored against the champion on the same holdout and promoted by margin."
        ),
    )
    def champion(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        handle = lake.handle()
        registry = ModelRegistry(handle)
        decisions = []
        for kind in ("batch", "online"):
            mv = registry.latest(spec.name, kind=kind)
            if mv is not None:
                d = evaluate(
                    handle,
                    spec,
                    mv.version,
                    holdout_days=lake.holdout_days,
                    margin=lake.promotion_margin,
                )
                decisions.append(d)
                context.log.info(f"v{mv.version} ({kind}): {d.reason}")
        current = registry.alias(spec.name, "champion")
        return dg.MaterializeResult(
            metadata={
                "champion": current if current is not None else "none",
                "decisions": dg.MetadataValue.md(
                    "| challenger | champion | challenger score | champion score | promoted | why |"
                    "\n| --- | --- | --- | --- | --- | --- |\n"
                    + "\n".join(
                        f"| v{d.challenger} | {d.champion} | {d.challenger_score:.4f} | "
                        f"{'-' if d.champion_score is None else f'{d.champion_score:.4f}'} | "
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
        group_name="serving",
        kinds={"polars"},
        description=f"`{spec.name}` {metric} per model version on predictions whose label arrived.",
    )
    def live(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        df = live_metrics(lake.handle(), spec)
        if df.is_empty():
            return dg.MaterializeResult(metadata={"labeled_predictions": 0})
        return dg.MaterializeResult(
            metadata={
                "labeled_predictions": int(df["labeled"].sum()),
                "by_version": dg.MetadataValue.md(
                    f"| version | labeled | {metric} | mean error |\n| --- | --- | --- | --- |\n"
                    + "\n".join(
                        f"| v{v} | {n} | {m:.4f} | {e:.4f} |" for v, n, m, e in df.iter_rows()
                    )
                ),
            }
        )

    return [online, batch, champion, predictions, live]
