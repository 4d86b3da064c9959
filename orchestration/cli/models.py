"""``eventlake features | learn | retrain | evaluate | models | score | lineage``."""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING

import click

from orchestration.cli.common import friendly_errors, settings_of
from orchestration.settings import Settings

if TYPE_CHECKING:  # heavy (River): imported by the commands that need it
    from training import ModelSpec, Target

__all__ = ["evaluate_cmd", "features", "learn", "lineage", "models", "retrain_cmd", "score"]


def _spec(ctx: click.Context, name: str) -> tuple[Settings, ModelSpec]:
    from orchestration.spec_loader import load_model

    settings = settings_of(ctx)
    return settings, load_model(settings.definitions, name)


@click.group()
def features() -> None:
    """Compute feature sets into features/<name>."""


@features.command("update")
@click.option("--model", "name", required=True, help="Model whose feature set to update.")
@click.pass_context
@friendly_errors
def features_update(ctx: click.Context, name: str) -> None:
    """Add the rows new since the last update, and labels that arrived (incremental)."""
    from features import update_features
    from lake.names import features as features_table

    settings, spec = _spec(ctx, name)
    r = update_features(settings.lake(), spec.feature_set)
    click.echo(
        f"{features_table(spec.feature_set.name)}: {r.new_rows} new rows, {r.relabeled} labeled "
        f"since the last update (version {r.version})"
    )


@features.command("build")
@click.option("--model", "name", required=True, help="Model whose feature set to build.")
@click.option("--from", "start", required=True, help="First day (YYYY-MM-DD).")
@click.option("--to", "end", required=True, help="Last day (YYYY-MM-DD), inclusive.")
@click.pass_context
@friendly_errors
def features_build(ctx: click.Context, name: str, start: str, end: str) -> None:
    """Recompute the feature rows of a range of days (batch, idempotent)."""
    from features import compute_features
    from lake.names import features as features_table

    settings, spec = _spec(ctx, name)
    n = compute_features(
        settings.lake(), spec.feature_set, dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    )
    click.echo(f"{features_table(spec.feature_set.name)}: {n} rows for {start}..{end}")


@click.command()
@click.option("--model", "name", required=True)
@click.pass_context
@friendly_errors
def learn(ctx: click.Context, name: str) -> None:
    """Online learning: learn from the labeled rows since the last online version."""
    from training import ModelRegistry, follow_online, learn_online

    settings, spec = _spec(ctx, name)
    run = learn_online(settings.lake(), spec)
    if run.version is None:
        click.echo(f"{name}: no new labeled rows; nothing learned")
        return
    moved = follow_online(ModelRegistry(settings.lake()), name, run.version.version)
    click.echo(
        f"{name} v{run.version.version} (online): learned {run.rows} rows, "
        f"{json.dumps(run.version.metrics)}, {len(run.drifts)} drift detections"
        + (f"; now the {' and '.join(moved)}" if moved else "")
    )


@click.command("retrain")
@click.option("--model", "name", required=True)
@click.option("--window-days", type=float, default=None, help="Default: setting.")
@click.option("--holdout-days", type=float, default=None, help="Default: setting.")
@click.option("--passes", type=int, default=1, show_default=True)
@click.pass_context
@friendly_errors
def retrain_cmd(
    ctx: click.Context,
    name: str,
    window_days: float | None,
    holdout_days: float | None,
    passes: int,
) -> None:
    """Batch retraining: a fresh model from a window of history."""
    from training import retrain

    settings, spec = _spec(ctx, name)
    mv = retrain(
        settings.lake(),
        spec,
        window_days=window_days or settings.retrain_window_days,
        holdout_days=holdout_days or settings.holdout_days,
        passes=passes,
    )
    click.echo(f"{name} v{mv.version} (batch): {mv.rows} rows, {json.dumps(mv.metrics)}")


@click.command("evaluate")
@click.option("--model", "name", required=True)
@click.option("--version", type=int, required=True, help="The challenger.")
@click.option("--margin", type=float, default=None, help="Default: setting promotion_margin.")
@click.pass_context
@friendly_errors
def evaluate_cmd(ctx: click.Context, name: str, version: int, margin: float | None) -> None:
    """Challenger against champion on the holdout; promote if better by the margin."""
    from training import evaluate

    settings, spec = _spec(ctx, name)
    d = evaluate(
        settings.lake(),
        spec,
        version,
        holdout_days=settings.holdout_days,
        margin=settings.promotion_margin if margin is None else margin,
    )
    verdict = "promoted to champion" if d.promoted else "not promoted"
    click.echo(f"{name} v{version}: {verdict} ({d.reason}; {d.holdout_rows} holdout rows)")


@click.group(invoke_without_command=True)
@click.option("--name", default=None, help="Only this model.")
@click.pass_context
@friendly_errors
def models(ctx: click.Context, name: str | None) -> None:
    """List model versions with metrics, lineage and aliases."""
    if ctx.invoked_subcommand is not None:
        return
    from training import ModelRegistry

    settings = settings_of(ctx)
    registry = ModelRegistry(settings.lake())
    names = [name] if name else registry.names()
    if not names:
        click.echo("no models yet; `eventlake learn --model NAME` trains one")
    for n in names:
        aliases = registry.aliases(n)
        by_version: dict[int, list[str]] = {}
        for a, v in aliases.items():
            by_version.setdefault(v, []).append(a)
        click.echo(f"{n}:")
        for r in registry.versions(n).iter_rows(named=True):
            tags = ",".join(by_version.get(r["version"], []))
            click.echo(
                f"  v{r['version']:<3} {r['kind']:<6} {r['created_at']:%Y-%m-%d %H:%M:%S}  "
                f"rows {r['rows']:<7} {r['metrics']}  {tags}"
            )


@models.command("compare")
@click.option("--name", required=True)
@click.argument("versions", type=int, nargs=-1, required=True)
@click.pass_context
@friendly_errors
def models_compare(ctx: click.Context, name: str, versions: tuple[int, ...]) -> None:
    """Score VERSIONS of a model side by side on the same holdout."""
    from training import ModelRegistry, holdout_start, labeled_rows, score

    settings, spec = _spec(ctx, name)
    lake = settings.lake()
    holdout = labeled_rows(lake, spec, since=holdout_start(lake, spec, settings.holdout_days))
    registry = ModelRegistry(lake)
    metric = type(spec.make_metric()).__name__
    click.echo(f"{name} on the newest {settings.holdout_days} days ({len(holdout)} rows):")
    for v in versions:
        mv = registry.load(name, version=v)
        click.echo(f"  v{v} ({mv.kind}): {metric} {score(mv.model, spec, holdout):.4f}")


_BY = click.option("--by", default="", help="Who does this [the OS user].")
_REASON = click.option("--reason", default="", help="Why (kept in the registry).")


@models.command("launch")
@click.option("--name", required=True)
@click.option("--mode", type=click.Choice(["shadow", "canary", "none"]), required=True,
              help="shadow: score beside the champion, never answer; canary: answer a "
                   "fraction of entities; none: end the launch.")  # fmt: skip
@click.option("--challenger", type=int, default=None, help="The version launched.")
@click.option("--fraction", type=float, default=0.0, help="Canary share of entities (0..1].")
@_BY
@_REASON
@click.pass_context
@friendly_errors
def models_launch(
    ctx: click.Context,
    name: str,
    mode: str,
    challenger: int | None,
    fraction: float,
    by: str,
    reason: str,
) -> None:
    """Launch a challenger in shadow or as a canary (scorers follow without a restart)."""
    from training import ModelRegistry
    from training.release import launch

    registry = ModelRegistry(settings_of(ctx).lake())
    done = launch(registry, name, mode, challenger=challenger, fraction=fraction, by=by,
                  reason=reason)  # fmt: skip
    what = "no launch" if done.mode == "none" else f"{done.mode} of v{done.challenger}"
    share = f" for {done.fraction:.0%} of entities" if done.mode == "canary" else ""
    click.echo(f"{name}: {what}{share} (by {done.by})")


@models.command("promote")
@click.option("--name", required=True)
@click.option("--version", type=int, required=True)
@_BY
@_REASON
@click.pass_context
@friendly_errors
def models_promote(ctx: click.Context, name: str, version: int, by: str, reason: str) -> None:
    """Make VERSION the champion (ends its launch)."""
    from training import ModelRegistry
    from training.release import promote

    promote(ModelRegistry(settings_of(ctx).lake()), name, version, by=by, reason=reason)
    click.echo(f"{name}: champion is v{version}")


@models.command("rollback")
@click.option("--name", required=True)
@_BY
@_REASON
@click.pass_context
@friendly_errors
def models_rollback(ctx: click.Context, name: str, by: str, reason: str) -> None:
    """Point the champion back at its previous version and end any launch."""
    from training import ModelRegistry
    from training.release import rollback

    v = rollback(ModelRegistry(settings_of(ctx).lake()), name, by=by, reason=reason)
    click.echo(f"{name}: rolled back; champion is v{v}")


@models.command("history")
@click.option("--name", required=True)
@click.pass_context
@friendly_errors
def models_history(ctx: click.Context, name: str) -> None:
    """Deploys (alias moves), launches and the access log of a model, oldest first."""
    from training import ModelRegistry

    registry = ModelRegistry(settings_of(ctx).lake())
    for r in registry.alias_history(name).iter_rows(named=True):
        click.echo(f"{r['set_at']:%Y-%m-%d %H:%M:%S} alias  {r['alias']} -> v{r['version']} "
                   f"by {r.get('by') or '?'}: {r['reason']}")  # fmt: skip
    for r in registry.launch_history(name).iter_rows(named=True):
        v = f" v{r['challenger']}" if r["challenger"] is not None else ""
        click.echo(f"{r['set_at']:%Y-%m-%d %H:%M:%S} launch {r['mode']}{v} "
                   f"{r['fraction'] or ''} by {r['by']}: {r['reason']}")  # fmt: skip
    for r in registry.access_log(name).iter_rows(named=True):
        click.echo(f"{r['at']:%Y-%m-%d %H:%M:%S} {r['event']:<6} v{r['version']} {r['role']} "
                   f"via {r['front_door']} ({r['target']}) on {r['host']} pid {r['pid']} "
                   f"by {r['user']}")  # fmt: skip


def target_of(alias: str | None, version: int | None) -> Target:
    """The :class:`training.Target` of ``--alias`` / ``--version`` (champion by default)."""
    from training import Target

    if alias is not None and version is not None:
        raise click.UsageError("pass --alias or --version, not both")
    return Target(version=version) if version is not None else Target(alias or "champion")


@click.command()
@click.option("--model", "names", required=True, multiple=True, help="Repeat for several models.")
@click.option("--alias", default=None, help="Score with this alias's version [champion].")
@click.option("--version", type=int, default=None, help="Score with this version (pinned).")
@click.option("--topic", default=None, help="Events to score (default: the feature set's).")
@click.option("--from-beginning", is_flag=True, help="Score the topic's history too.")
@click.option("--until-caught-up", is_flag=True, help="Stop at the watermarks seen at start.")
@click.pass_context
@friendly_errors
def score(
    ctx: click.Context,
    names: tuple[str, ...],
    alias: str | None,
    version: int | None,
    topic: str | None,
    from_beginning: bool,
    until_caught_up: bool,
) -> None:
    """Score Kafka events until Ctrl-C: predictions to the lake (exactly once) and to
    <model>-predictions; alias moves and launches apply without a restart."""
    from lake import subject_topics
    from lake.names import layer_of
    from orchestration.serving import ServingMetrics, run_scoring
    from orchestration.signals import stop_on_signals
    from orchestration.spec_loader import load_model

    settings = settings_of(ctx)
    specs = [load_model(settings.definitions, n) for n in names]
    target = target_of(alias, version)
    if not settings.kafka_bootstrap_servers:
        raise click.UsageError("set EVENTLAKE_KAFKA_BOOTSTRAP_SERVERS (`eventlake broker`)")
    lake = settings.lake()
    if topic is None:
        subject = layer_of(specs[0].feature_set.source)[1]
        topics = subject_topics(lake, subject, settings.subject_strategy)
        if len(topics) != 1:
            raise click.UsageError(
                f"cannot tell which topic carries {subject!r} "
                f"({', '.join(topics) or 'none has been ingested yet'}); pass --topic"
            )
        topic = topics[0]
    metrics = ServingMetrics()
    if settings.metrics_port:
        metrics.serve(settings.metrics_port, settings.metrics_host)
    with stop_on_signals() as stop:
        s = run_scoring(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            lake=lake,
            specs=specs,
            topic=topic,
            stop=stop,
            target=target,
            from_beginning=from_beginning,
            until_caught_up=until_caught_up,
            registry_url=settings.registry_url,
            subject_strategy=settings.subject_strategy,
            consumer_options=dict(settings.kafka_consumer_options),
            client_options=settings.kafka_client(),
            metrics=metrics,
            online_store_url=settings.online_store_url,
        )
    roles = ", ".join(f"{n} {r}" for r, n in sorted(s.roles.items())) or "none"
    click.echo(
        f"scored {s.events} events of {topic} at {target.label}: {s.predictions} predictions "
        f"answered ({roles}), model versions {sorted(s.versions)}"
    )


@click.command()
@click.option("--model", "name", required=True)
@click.option("--topic", default=None, help="A Kafka event's topic ...")
@click.option("--partition", type=int, default=None, help="... partition ...")
@click.option("--offset", type=int, default=None, help="... and offset.")
@click.option("--request-id", default=None, help="Or an HTTP request's id.")
@click.option("--entity", default=None, help="One entity key of that request.")
@click.pass_context
@friendly_errors
def lineage(
    ctx: click.Context,
    name: str,
    topic: str | None,
    partition: int | None,
    offset: int | None,
    request_id: str | None,
    entity: str | None,
) -> None:
    """Which model version scored a record or request, and which records trained it."""
    import polars as pl

    from lake.names import features as features_table
    from training import explain

    if request_id is None and None in (topic, partition, offset):
        raise click.UsageError("pass --topic, --partition and --offset, or --request-id")
    settings = settings_of(ctx)
    e = explain(settings.lake(), name, topic, partition, offset, request_id=request_id,
                entity_key=entity)  # fmt: skip
    click.echo(str(e))
    rows = e.training_rows.select(pl.len()).collect().item() if e.feature_set else 0
    table = features_table(e.feature_set) if e.feature_set else "(none)"
    click.echo(f"  {rows} feature rows of {table} (Lake.scan to read them)")
