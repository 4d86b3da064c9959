"""The ``eventlake`` command line."""

from __future__ import annotations

import datetime as dt
import logging
import os
import sys

import click

from ingest import EmbeddedBroker, Ingester, IngestMetrics
from orchestration.cli.common import friendly_errors, settings_of
from orchestration.cli.lake import erase, maintain, sql, tables
from orchestration.cli.models import (
    evaluate_cmd,
    features,
    learn,
    lineage,
    models,
    retrain_cmd,
    score,
)
from orchestration.cli.replay import replay
from orchestration.cli.serve import serve
from orchestration.signals import stop_on_signals
from training.serving_gap import ServingGap

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    help="TOML config file (default: $EVENTLAKE_CONFIG).",
)
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
)
@click.pass_context
def cli(ctx: click.Context, config_file: str | None, log_level: str) -> None:
    """eventlake: every Kafka event lands exactly once in Delta Lake."""
    logging.basicConfig(
        level=log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    ctx.obj = {"config_file": config_file}


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=None, help="Port (default: a free one).")
@friendly_errors
def broker(host: str, port: int | None) -> None:
    """Run the embedded Kafka broker (Tansu, memory storage) until Ctrl-C."""
    with stop_on_signals() as stop, EmbeddedBroker(host=host, port=port) as b:
        click.echo(f"Kafka broker (Tansu, memory storage) listening at {b.bootstrap_servers}")
        click.echo(f"export EVENTLAKE_KAFKA_BOOTSTRAP_SERVERS={b.bootstrap_servers}", err=True)
        while not stop.wait(0.5):
            if b.exit_code is not None:
                raise click.ClickException(f"the broker exited with {b.exit_code}")
        click.echo("stopping the broker", err=True)


@cli.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on (loopback unless told otherwise).",
)
@click.option("--port", type=int, default=8081, show_default=True, help="Port to listen on.")
@click.pass_context
@friendly_errors
def registry(ctx: click.Context, host: str, port: int) -> None:
    """Serve the Confluent Schema Registry REST API over the lake's registry until Ctrl-C."""
    from ingest import SchemaRegistryServer
    from lake import SchemaStore

    settings = settings_of(ctx)
    store = SchemaStore.open(settings.lake())
    with stop_on_signals() as stop, SchemaRegistryServer(store, host=host, port=port) as server:
        click.echo(
            f"schema registry (Confluent REST API) at {server.url}, "
            f"stored in the lake at {settings.lake_root}"
        )
        click.echo(f"export EVENTLAKE_REGISTRY_URL={server.url}", err=True)
        stop.wait()
        click.echo("stopping the schema registry", err=True)


@cli.command()
@click.option(
    "--topic",
    "topics",
    multiple=True,
    help="Kafka topic to ingest into bronze/<topic>; repeat for several.",
)
@click.option(
    "--topic-pattern",
    default=None,
    help="Also ingest every topic matching this regex (starting with ^), "
    "including topics created later, e.g. '^orders\\.'.",
)
@click.option(
    "--until-caught-up",
    is_flag=True,
    help="Stop once every partition reaches the high watermark seen at start.",
)
@click.option("--group", default=None, help="Consumer group (default: setting kafka_group_id).")
@click.option(
    "--decode/--no-decode",
    "decode",
    default=None,
    help="Decode Confluent-framed Avro into silver (default: setting decode_avro).",
)
@click.option(
    "--metrics-port",
    type=int,
    default=None,
    help="Serve Prometheus metrics on this port (default: setting metrics_port).",
)
@click.pass_context
@friendly_errors
def ingest(
    ctx: click.Context,
    topics: tuple[str, ...],
    topic_pattern: str | None,
    until_caught_up: bool,
    group: str | None,
    decode: bool | None,
    metrics_port: int | None,
) -> None:
    """Ingest Kafka topics into bronze/<topic>, exactly once, in one process."""
    if not topics and topic_pattern is None:
        raise click.UsageError("name a --topic (repeatable) or a --topic-pattern to ingest")
    settings = settings_of(ctx, metrics_port=metrics_port, decode_avro=decode)
    options = settings.ingest_options(topics, topic_pattern=topic_pattern, group_id=group)
    metrics = IngestMetrics()
    if settings.metrics_port:
        metrics.serve(settings.metrics_port, settings.metrics_host)
        logging.getLogger(__name__).info(
            "metrics at http://%s:%d/metrics", settings.metrics_host, settings.metrics_port
        )
    on_commit = None
    if os.environ.get("DAGSTER_HOME"):  # report each bronze commit to that Dagster instance
        import dagster as dg

        from orchestration.defs.reports import bronze_reporter

        on_commit = bronze_reporter(dg.DagsterInstance.get())
    with stop_on_signals() as stop:
        summary = Ingester(options, metrics=metrics, on_commit=on_commit).run(
            until_caught_up=until_caught_up, stop=stop
        )
    busy_rate = summary.records / summary.busy_s if summary.busy_s else 0.0
    click.echo(
        f"ingested {summary.records} records from {len(summary.topics)} topic(s) in "
        f"{summary.commits} commits; {summary.elapsed_s:.2f} s in all, {summary.busy_s:.3f} s "
        f"from first record to last commit ({busy_rate:,.0f} records/s)"
    )
    for t in summary.topics.values():
        click.echo(
            f"  {t.topic}: {t.records} records, {t.commits} commits, Delta version "
            f"{t.last_version}, next offsets {t.next_offsets}"
        )
    for topic, why in summary.skipped.items():
        click.echo(f"  {topic}: skipped, {why}", err=True)


@cli.command()
@click.option(
    "--root",
    default="./eventlake-demo",
    show_default=True,
    help="Folder for the demo's lake (DIR/lake) and Dagster instance (DIR/dagster).",
)
@click.option("--orders", default=3000, show_default=True, help="Orders the app places.")
@click.option(
    "--step-minutes",
    type=click.IntRange(1, 24 * 60),
    default=30,
    show_default=True,
    help="Minutes of event time between learning runs and sensor ticks: shorter serves "
    "fresher models and takes longer.",
)
@click.option("--live", is_flag=True, help="Then keep producing, ingesting and scoring.")
@click.pass_context
@friendly_errors
def demo(ctx: click.Context, root: str, orders: int, step_minutes: int, live: bool) -> None:
    """Run the whole pipeline on the embedded default and show what happened."""
    from orchestration.demo import run_demo

    settings = settings_of(ctx)
    with stop_on_signals() as stop:
        r = run_demo(
            root,
            settings,
            orders=orders,
            step=dt.timedelta(minutes=step_minutes),
            live=stop if live else None,
            echo=click.echo,
        )
    click.echo(
        f"\ndone in {r.seconds:.0f} s. Events sent: "
        + ", ".join(f"{t} {n:,}" for t, n in sorted(r.events.items()))
    )
    click.echo("tables:")
    for name, rows, version in r.tables:
        click.echo(f"  {name:<32} {rows:>9,} rows  Delta v{version}")
    click.echo(
        "schema versions: "
        + ", ".join(f"{s} v1..v{n}" for s, n in sorted(r.schema_versions.items()))
        + f"; dead letters: {r.dead_letters}"
    )
    click.echo("model versions (eta):")
    for v in r.models.iter_rows(named=True):
        champion = "  <- champion" if v["version"] == r.champion else ""
        click.echo(
            f"  v{v['version']:<3} {v['kind']:<6} rows {v['rows']:<6} {v['metrics']}{champion}"
        )
    drift = r.drift["event_time"].to_list()
    click.echo(
        f"drift detections: {len(drift)}"
        + (f", first at {drift[0]:%Y-%m-%d %H:%M} (event time)" if drift else "")
        + f"; predictions written: {r.predictions:,}"
    )
    if r.gap is not None:
        click.echo(_gap_line(r.gap))
    click.echo(f"plot: {r.plot}")
    click.echo(f"open the Dagster UI on this lake: eventlake ui --root {root}")


def _gap_line(g: ServingGap) -> str:
    """The demo summary's line on how far serving lagged learning."""

    def f(x: float | None) -> str:
        return "-" if x is None else f"{x:.2f}"

    ratio = g.window_ratio
    return (
        f"served vs learned (mean error): 2 h after the drift served {f(g.served_window)}, "
        f"online learner {f(g.online_window)} ({'-' if ratio is None else f'{ratio:.1f}'}x; "
        f"target <= 1.3x); since the first batch version could serve "
        f"({'-' if g.since is None else f'{g.since:%Y-%m-%d %H:%M:%S}'}), served {f(g.served)}, "
        f"online {f(g.online)}, batch-only {f(g.batch_only)}; the online learner learning "
        f"each label when it arrives (River's delayed progressive validation, the best a "
        f"served model can do): 2 h after the drift {f(g.delayed_window)} (served "
        f"{'-' if g.delayed_ratio is None else f'{g.delayed_ratio:.2f}'}x), since the first "
        f"batch {f(g.delayed)}; {g.blind} of the {g.served_count} orders served in those 2 h "
        f"were placed before any of their labels arrived, and their error alone makes the "
        f"served mean there {f(g.blind_floor)} even if every other order were served exactly"
    )


@cli.command()
@click.option("--root", default="./eventlake-demo", show_default=True, help="The demo's folder.")
@click.option("--port", type=int, default=3000, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
def ui(root: str, port: int, host: str) -> None:
    """Open the Dagster UI (`dg dev`) on the lake and Dagster instance under ROOT."""
    import shutil

    env = dict(os.environ)
    env["EVENTLAKE_LAKE_ROOT"] = os.path.abspath(os.path.join(root, "lake"))
    env["DAGSTER_HOME"] = os.path.abspath(os.path.join(root, "dagster"))
    os.makedirs(env["DAGSTER_HOME"], exist_ok=True)
    dg_bin = shutil.which("dg", path=os.path.dirname(sys.executable)) or "dg"
    project = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    click.echo(f"Dagster UI at http://{host}:{port} (lake {env['EVENTLAKE_LAKE_ROOT']})")
    os.chdir(project)  # dg finds the project by its pyproject.toml
    os.execvpe(dg_bin, [dg_bin, "dev", "--host", host, "--port", str(port)], env)


@cli.group("dead-letters")
def dead_letters() -> None:
    """Records that could not be decoded: list them, reprocess them."""


@dead_letters.command("list")
@click.option("--topic", default=None, help="Only this topic.")
@click.option("--limit", default=20, show_default=True, help="Rows to show (0: all).")
@click.pass_context
@friendly_errors
def dead_letters_list(ctx: click.Context, topic: str | None, limit: int) -> None:
    """Show dead letters: where they came from and why they failed."""
    from lake import DeadLetters

    settings = settings_of(ctx)
    table = DeadLetters.open(settings.lake()).read(topic)
    kinds: dict[str, int] = {}
    for k in table.column("error_kind").to_pylist():
        kinds[k] = kinds.get(k, 0) + 1
    click.echo(
        f"{table.num_rows} dead letters"
        + (f" of {topic}" if topic else "")
        + (": " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) if kinds else "")
    )
    rows = table.to_pylist()
    for r in rows[: limit or len(rows)]:
        click.echo(
            f"  {r['topic']}[{r['partition']}]@{r['offset']}  {r['error_kind']}: "
            f"{r['error_message']}"
        )


@dead_letters.command("reprocess")
@click.option("--topic", required=True, help="Topic whose dead letters to decode again.")
@click.pass_context
@friendly_errors
def dead_letters_reprocess(ctx: click.Context, topic: str) -> None:
    """Decode a topic's dead letters again, after the cause was fixed."""
    from ingest import Decoder, SchemaResolver, SilverWriter
    from lake import SchemaStore

    settings = settings_of(ctx)
    lake = settings.lake()
    resolver = SchemaResolver(SchemaStore.open(lake), settings.registry_url)
    expectations = settings.expectations_of(lake)
    writer = SilverWriter(
        lake,
        Decoder(
            topic,
            resolver,
            subject_strategy=settings.subject_strategy,
            expectations=expectations,
        ),
    )
    summary = writer.reprocess()
    moved = sum(summary.silver.values())
    left = sum(summary.dead.values())
    click.echo(
        f"moved {moved} dead letters of {topic} to silver "
        f"({', '.join(f'{s}: {n}' for s, n in sorted(summary.silver.items())) or 'none'})"
        f"; {left} still fail"
    )


@cli.command("config")
@click.pass_context
@friendly_errors
def show_config(ctx: click.Context) -> None:
    """Print the effective settings."""
    from orchestration.settings import masked

    for key, value in settings_of(ctx).model_dump().items():
        click.echo(f"{key} = {masked(value, key)!r}")


for command in (
    tables,
    sql,
    maintain,
    erase,
    replay,
    features,
    learn,
    retrain_cmd,
    evaluate_cmd,
    models,
    score,
    serve,
    lineage,
):
    cli.add_command(command)


def main() -> None:
    """Entry point of the ``eventlake`` console script.

    Leaves with ``os._exit`` once the command is done and its output flushed:
    the native thread pools of pyarrow, delta-rs and Polars can race at
    interpreter shutdown and abort an already finished command with
    "terminate called without an active exception" (delta-io/delta-rs#2184,
    apache/arrow#34314, pola-rs/polars#24169); we saw it once in CI.
    """
    code: int = 0
    try:
        cli(prog_name="eventlake")
    except SystemExit as e:
        if isinstance(e.code, str):
            click.echo(e.code, err=True)
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)
