"""The ``eventlake`` command line."""

from __future__ import annotations

import logging
import os
import sys
import time

import click

from ingest import EmbeddedBroker, Ingester, IngestMetrics
from orchestration.cli_common import friendly_errors, settings_of
from orchestration.lake_commands import erase, maintain, sql, tables
from orchestration.model_commands import (
    evaluate_cmd,
    features,
    learn,
    lineage,
    models,
    retrain_cmd,
    score,
)
from orchestration.replay_commands import replay
from orchestration.signals import stop_on_signals

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
    from ingest.registry_server import RegistryServer
    from lake import SchemaRegistry

    settings = settings_of(ctx)
    store = SchemaRegistry.open(
        settings.lake_root, storage_options=dict(settings.storage_options) or None
    )
    with stop_on_signals() as stop, RegistryServer(store, host=host, port=port) as server:
        click.echo(
            f"schema registry (Confluent REST API) at {server.url}, "
            f"stored in {settings.lake_root}/registry"
        )
        click.echo(f"export EVENTLAKE_REGISTRY_URL={server.url}", err=True)
        stop.wait()
        click.echo("stopping the schema registry", err=True)


@cli.command()
@click.option("--topic", required=True, help="Kafka topic to ingest into bronze/<topic>.")
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
    topic: str,
    until_caught_up: bool,
    group: str | None,
    decode: bool | None,
    metrics_port: int | None,
) -> None:
    """Ingest a Kafka topic into bronze/<topic>, exactly once."""
    settings = settings_of(ctx, metrics_port=metrics_port, decode_avro=decode)
    options = settings.ingest_options(topic, group_id=group)
    metrics = IngestMetrics()
    if settings.metrics_port:
        metrics.serve(settings.metrics_port, settings.metrics_host)
        logging.getLogger(__name__).info(
            "metrics at http://%s:%d/metrics", settings.metrics_host, settings.metrics_port
        )
    with stop_on_signals() as stop:
        summary = Ingester(options, metrics=metrics).run(until_caught_up=until_caught_up, stop=stop)
    busy_rate = summary.records / summary.busy_s if summary.busy_s else 0.0
    click.echo(
        f"ingested {summary.records} records from {topic} in {summary.commits} commits; "
        f"{summary.elapsed_s:.2f} s in all, {summary.busy_s:.3f} s from first record to last "
        f"commit ({busy_rate:,.0f} records/s); Delta version {summary.last_version}; "
        f"next offsets {summary.next_offsets}"
    )


@cli.command()
@click.option(
    "--root",
    default="./eventlake-demo",
    show_default=True,
    help="Folder for the demo's lake (DIR/lake).",
)
@click.option("--events", default=50_000, show_default=True, help="Sample events to produce.")
@click.pass_context
@friendly_errors
def demo(ctx: click.Context, root: str, events: int) -> None:
    """Run eventlake on the embedded default and show what landed."""
    from orchestration.demo import TOPIC, run_demo

    settings = settings_of(ctx)
    lake_root = os.path.join(root, "lake")
    t0 = time.monotonic()
    r = run_demo(lake_root, events=events, bootstrap_servers=settings.kafka_bootstrap_servers)
    click.echo(f"\nbronze/{TOPIC} at {os.path.abspath(lake_root)}")
    click.echo(
        f"  Delta version {r.delta_version}, {r.files} data files, "
        f"{r.bronze_rows:,} rows (produced {r.produced:,} this run)"
    )
    for p, (rows, lo, hi) in r.per_partition.items():
        click.echo(
            f"  partition {p}: {rows:,} rows, offsets {lo}..{hi}, "
            f"{'no gaps, no duplicates' if rows == hi - lo + 1 else 'GAPS OR DUPLICATES'}"
        )
    click.echo(
        f"done in {time.monotonic() - t0:.1f} s. Query it: "
        f"python -c \"import polars as pl; print(pl.scan_delta('{lake_root}/bronze/{TOPIC}')"
        f".group_by('partition').len().collect())\""
    )


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
    from lake.dead_letters import DeadLetters

    settings = settings_of(ctx)
    table = DeadLetters.open(
        settings.lake_root, storage_options=dict(settings.storage_options) or None
    ).read(topic)
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
    from ingest.schema_resolver import SchemaResolver
    from ingest.silver_writer import SilverWriter
    from lake import SchemaRegistry

    settings = settings_of(ctx)
    so = dict(settings.storage_options) or None
    registry = SchemaRegistry.open(settings.lake_root, storage_options=so)
    writer = SilverWriter(
        settings.lake_root,
        topic,
        SchemaResolver(registry, settings.registry_url),
        subject_strategy=settings.subject_strategy,
        storage_options=so,
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
    for key, value in settings_of(ctx).model_dump().items():
        click.echo(f"{key} = {value!r}")


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
    lineage,
):
    cli.add_command(command)


def main() -> None:
    """Entry point of the ``eventlake`` console script."""
    cli(prog_name="eventlake")
