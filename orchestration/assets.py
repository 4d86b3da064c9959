"""The pipeline as Dagster assets: bronze (external), silver, dead letters, features, models.

- ``bronze/<topic>``: written by `eventlake ingest` outside Dagster runs, which
  reports a materialization per commit (offsets, rows, Delta version).
- ``silver/<subject>``: daily partitions; materializing a range rebuilds those
  days from bronze (:func:`ingest.rebuild.rebuild_silver`, one run per range), a
  no-op where the streaming path already wrote the same rows.
- ``dead_letters``: reprocesses each topic's dead letters; reports what is left.
- ``features/<set>``: daily partitions computed by the batch path.
- ``models/<m>/online``: incremental feature update and online ``partial_fit``.
- ``models/<m>/batch``: retraining from a window (scheduled, or on drift).
- ``models/<m>/champion``: challenger against champion, promotion by margin.
- ``predictions/<m>`` (external, written by `eventlake score`) and
  ``models/<m>/live_metrics``.
"""

import base64
import datetime as dt
import warnings
from typing import Any

import dagster as dg
import polars as pl
import pyarrow as pa

from features.compute import compute_features, update_features
from features.definition import FeatureSet, Label
from ingest.rebuild import rebuild_silver
from ingest.silver_writer import SilverWriter
from lake.catalog import Lake, TableNotInLake
from lake.dead_letters import DeadLetters
from orchestration.lake_resource import LakeResource
from orchestration.plots import metric_plot
from training.evaluation import evaluate
from training.online import learn_online
from training.registry import ModelRegistry
from training.retrain import retrain
from training.scoring import live_metrics
from training.specs import ModelSpec

__all__ = ["Topology", "build_assets", "topic_of"]

EAGER = dg.AutomationCondition.eager()
# Single-run backfills are what a range rebuild needs; the parameter is marked beta.
warnings.filterwarnings("ignore", category=dg.BetaWarning, message=".*backfill_policy.*")


def topic_of(table: str) -> str:
    """The topic of a silver table name (topic-name subject strategy).

    >>> topic_of("silver.order_placed-value")
    'order_placed'
    """
    return table.split(".", 1)[1].removesuffix("-value")


class Topology:
    """Topics, feature sets and models the assets are built for."""

    def __init__(self, specs: list[ModelSpec], extra_topics: list[str] = ()) -> None:  # type: ignore[assignment]
        self.specs = specs
        sets = {s.feature_set.name: s.feature_set for s in specs}
        self.feature_sets: list[FeatureSet] = [sets[n] for n in sorted(sets)]
        topics = set(extra_topics)
        for fs in self.feature_sets:
            topics.add(topic_of(fs.source))
            if isinstance(fs.label, Label):
                topics.add(topic_of(fs.label.table))
        self.topics = sorted(topics)

    @staticmethod
    def bronze(topic: str) -> dg.AssetKey:
        return dg.AssetKey(["bronze", topic])

    @staticmethod
    def silver(topic: str) -> dg.AssetKey:
        return dg.AssetKey(["silver", f"{topic}-value"])

    @staticmethod
    def features(fs: FeatureSet) -> dg.AssetKey:
        return dg.AssetKey(["features", fs.name])

    @staticmethod
    def model(spec: ModelSpec, part: str) -> dg.AssetKey:
        return dg.AssetKey(["models", spec.name, part])

    @staticmethod
    def predictions(spec: ModelSpec) -> dg.AssetKey:
        return dg.AssetKey(["predictions", spec.name])


def _schema_metadata(lake: Lake, name: str) -> dict[str, Any]:
    try:
        table = lake.table(name)
    except TableNotInLake:
        return {}
    schema = pa.schema(table.schema().to_arrow())
    return {
        "dagster/column_schema": dg.TableSchema(
            columns=[dg.TableColumn(f.name, str(f.type)) for f in schema]
        ),
        "dagster/row_count": lake.info(name).rows,
        "delta_version": table.version(),
        "uri": dg.MetadataValue.path(table.table_uri),
    }


def _days(context: dg.AssetExecutionContext) -> tuple[dt.date, dt.date]:
    window = context.partition_time_window
    return window.start.date(), (window.end - dt.timedelta(days=1)).date()


def _bronze_asset(topo: Topology, topic: str) -> dg.AssetSpec:
    return dg.AssetSpec(
        key=topo.bronze(topic),
        description=(
            f"Every Kafka record of `{topic}` exactly once (bronze/{topic}), written by "
            "`eventlake ingest`, which reports each commit here."
        ),
        group_name="bronze",
        kinds={"kafka", "delta"},
    )


def _silver_asset(
    topo: Topology, topic: str, partitions: dg.PartitionsDefinition
) -> dg.AssetsDefinition:
    @dg.asset(
        key=topo.silver(topic),
        deps=[topo.bronze(topic)],
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        automation_condition=EAGER,
        group_name="silver",
        kinds={"avro", "delta"},
        description=(
            f"Decoded `{topic}` records, one typed column per Avro field plus lineage. "
            "Materializing days rebuilds them from bronze; unchanged days are not rewritten."
        ),
    )
    def silver(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        start, end = _days(context)
        summary = rebuild_silver(
            lake.lake_root,
            topic,
            lake.resolver(),
            start=start,
            end=end,
            subject_strategy=lake.subject_strategy,  # type: ignore[arg-type]
            storage_options=lake.storage_options,
        )
        context.log.info(f"silver of {topic} {start}..{end}: {summary}")
        meta = _schema_metadata(
            Lake(lake.lake_root, storage_options=lake.storage_options), f"silver.{topic}-value"
        )
        return dg.MaterializeResult(
            metadata={
                **meta,
                "days": f"{start}..{end}",
                "records_decoded": summary.records,
                "dead_letters": summary.dead_letters,
                "rewritten": ", ".join(sorted(summary.rewritten)) or "nothing (already equal)",
            }
        )

    return silver


def _dead_letters_asset(topo: Topology) -> dg.AssetsDefinition:
    @dg.asset(
        key=dg.AssetKey(["dead_letters"]),
        deps=[topo.silver(t) for t in topo.topics],
        group_name="silver",
        kinds={"delta"},
        description=(
            "Records that could not be decoded, kept whole with the error. Materializing "
            "reprocesses them (after a schema was registered or a bug fixed)."
        ),
    )
    def dead_letters(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        moved = 0
        for topic in topo.topics:
            writer = SilverWriter(
                lake.lake_root,
                topic,
                lake.resolver(),
                subject_strategy=lake.subject_strategy,  # type: ignore[arg-type]
                storage_options=lake.storage_options,
            )
            moved += sum(writer.reprocess().silver.values())
        table = DeadLetters.open(lake.lake_root, storage_options=lake.storage_options).read()
        kinds = (
            pl.DataFrame(table.select(["topic", "error_kind"]))
            .group_by("topic", "error_kind")
            .len()
        )
        context.log.info(f"moved {moved} dead letters to silver; {table.num_rows} left")
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": table.num_rows,
                "moved_to_silver": moved,
                "by_kind": dg.MetadataValue.md(
                    "| topic | kind | records |\n| --- | --- | --- |\n"
                    + "\n".join(
                        f"| {t} | {k} | {n} |" for t, k, n in kinds.sort("topic").iter_rows()
                    )
                ),
            }
        )

    return dead_letters


def _features_asset(
    topo: Topology, fs: FeatureSet, partitions: dg.PartitionsDefinition
) -> dg.AssetsDefinition:
    deps = [topo.silver(topic_of(fs.source))]
    if isinstance(fs.label, Label):
        deps.append(topo.silver(topic_of(fs.label.table)))

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
    def features(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        start, end = _days(context)
        n = compute_features(lake.lake_root, fs, start, end, storage_options=lake.storage_options)
        meta = _schema_metadata(
            Lake(lake.lake_root, storage_options=lake.storage_options), f"features.{fs.name}"
        )
        return dg.MaterializeResult(metadata={**meta, "days": f"{start}..{end}", "rows_written": n})

    return features


def _model_assets(topo: Topology, spec: ModelSpec) -> list[dg.AssetsDefinition]:
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
        so = lake.storage_options
        update = update_features(lake.lake_root, spec.feature_set, storage_options=so)
        run = learn_online(lake.lake_root, spec, storage_options=so)
        registry = ModelRegistry(lake.lake_root, storage_options=so)
        mv = run.version or registry.latest(spec.name, kind="online")
        meta: dict[str, Any] = {
            "feature_rows_added": update.new_rows,
            "labels_arrived": update.relabeled,
            "rows_learned": run.rows,
            "drift_detections": len(run.drifts),
        }
        if mv is not None:
            png = metric_plot(lake.lake_root, spec.name, so)
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
        so = lake.storage_options
        update_features(lake.lake_root, spec.feature_set, storage_options=so)
        mv = retrain(
            lake.lake_root,
            spec,
            window_days=lake.retrain_window_days,
            holdout_days=lake.holdout_days,
            storage_options=so,
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
        so = lake.storage_options
        registry = ModelRegistry(lake.lake_root, storage_options=so)
        decisions = []
        for kind in ("batch", "online"):
            mv = registry.latest(spec.name, kind=kind)
            if mv is not None:
                d = evaluate(
                    lake.lake_root,
                    spec,
                    mv.version,
                    holdout_days=lake.holdout_days,
                    margin=lake.promotion_margin,
                    storage_options=so,
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
        df = live_metrics(lake.lake_root, spec, storage_options=lake.storage_options)
        if df.is_empty():
            return dg.MaterializeResult(metadata={"labeled_predictions": 0})
        return dg.MaterializeResult(
            metadata={
                "labeled_predictions": int(df["labeled"].sum()),
                "by_version": dg.MetadataValue.md(
                    f"| version | labeled | {metric} |\n| --- | --- | --- |\n"
                    + "\n".join(f"| v{v} | {n} | {m:.4f} |" for v, n, m in df.iter_rows())
                ),
            }
        )

    return [online, batch, champion, predictions, live]  # type: ignore[list-item]


def build_assets(topo: Topology, partitions: dg.PartitionsDefinition) -> list[Any]:
    """Every asset of the pipeline for ``topo``."""
    out: list[Any] = [_bronze_asset(topo, t) for t in topo.topics]
    out += [_silver_asset(topo, t, partitions) for t in topo.topics]
    out.append(_dead_letters_asset(topo))
    out += [_features_asset(topo, fs, partitions) for fs in topo.feature_sets]
    for spec in topo.specs:
        out += _model_assets(topo, spec)
    return out
