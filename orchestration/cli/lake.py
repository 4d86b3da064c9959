"""``eventlake tables | sql | maintain | erase``: looking at and looking after the lake."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import click

from orchestration.cli.common import friendly_errors, settings_of

if TYPE_CHECKING:
    from lake import Lake

__all__ = ["erase", "maintain", "sql", "tables"]


def _lake(ctx: click.Context) -> Lake:
    return settings_of(ctx).lake()


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


@click.command()
@click.option("--schema/--no-schema", "show_schema", default=True, help="Show each schema.")
@click.pass_context
@friendly_errors
def tables(ctx: click.Context, show_schema: bool) -> None:
    """List every table: rows, files, size, Delta version, last commit, schema."""
    lake = _lake(ctx)
    infos = lake.tables()
    if not infos:
        click.echo(f"no tables under {lake.root} yet; run `eventlake ingest` or `eventlake demo`")
        return
    width = max(len(i.name) for i in infos)
    click.echo(
        f"{'table':<{width}}  {'rows':>12}  {'files':>6}  {'size':>10}  {'version':>7}  last commit"
    )
    for i in infos:
        when = i.last_commit.strftime("%Y-%m-%d %H:%M:%S") if i.last_commit else "-"
        click.echo(
            f"{i.name:<{width}}  {i.rows:>12,}  {i.files:>6}  {_size(i.size_bytes):>10}  "
            f"{i.version:>7}  {when}"
        )
        if show_schema:
            click.echo(f"{'':<{width}}  schema: {i.schema}")


@click.command()
@click.argument("query")
@click.option(
    "--as-of",
    default=None,
    help="Query every table as it was at this time (ISO 8601, UTC if no zone).",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the result to FILE (.csv, .json or .parquet) instead of printing it.",
)
@click.option("--limit", default=50, show_default=True, help="Rows to print (0: all).")
@click.pass_context
@friendly_errors
def sql(ctx: click.Context, query: str, as_of: str | None, output: str | None, limit: int) -> None:
    """Run a SQL query over the lake's tables, named like silver.order_placed.

    Names with '-' need double quotes: SELECT count(*) FROM "silver.orders-value".
    """
    import polars as pl

    try:
        result = _lake(ctx).sql(query, as_of=as_of)
    except (pl.exceptions.PolarsError, ValueError) as e:
        raise click.ClickException(f"the query failed: {e}") from e
    if output:
        ext = os.path.splitext(output)[1].lower()
        if ext == ".csv":
            result.write_csv(output)
        elif ext == ".json":
            result.write_json(output)
        elif ext == ".parquet":
            result.write_parquet(output)
        else:
            raise click.BadParameter("use a .csv, .json or .parquet file name", param_hint="-o")
        click.echo(f"wrote {result.height:,} rows to {output}")
        return
    with pl.Config(tbl_rows=limit or -1, tbl_cols=-1, fmt_str_lengths=60, tbl_width_chars=200):
        click.echo(result)


@click.command()
@click.option("--table", "names", multiple=True, help="Only this table (repeatable).")
@click.option("--no-compact", is_flag=True, help="Skip compaction.")
@click.option("--no-vacuum", is_flag=True, help="Skip vacuum.")
@click.option(
    "--retention-hours",
    type=float,
    default=None,
    help="Vacuum files unreferenced for this long (default 168: a week of time travel).",
)
@click.pass_context
@friendly_errors
def maintain(
    ctx: click.Context,
    names: tuple[str, ...],
    no_compact: bool,
    no_vacuum: bool,
    retention_hours: float | None,
) -> None:
    """Compact small files, checkpoint, clean the log and vacuum, table by table."""
    from lake import DEFAULT_RETENTION_HOURS, maintain_lake

    for name, report in maintain_lake(
        _lake(ctx),
        names,
        compact=not no_compact,
        vacuum=not no_vacuum,
        retention_hours=DEFAULT_RETENTION_HOURS if retention_hours is None else retention_hours,
    ):
        click.echo(
            f"{name}: {report.files_before} -> {report.files_after} files, "
            f"vacuumed {report.vacuumed}, version {report.version} ({report.seconds:.1f} s)"
        )


@click.command()
@click.option("--where", default=None, help="SQL predicate on decoded fields, e.g. 'user_id = 42'.")
@click.option("--key", default=None, help="Kafka record key (UTF-8 text).")
@click.option("--key-hex", default=None, help="Kafka record key as hex bytes.")
@click.option(
    "--models",
    type=click.Choice(["retrain", "list"]),
    default="retrain",
    show_default=True,
    help="Model versions trained on the records: replace them (aliases move to the "
    "replacements) or only list them.",
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
@friendly_errors
def erase(
    ctx: click.Context,
    where: str | None,
    key: str | None,
    key_hex: str | None,
    models: str,
    yes: bool,
) -> None:
    """Delete matching records from every table, the feature and online state and
    predictions for good (GDPR), replace the models trained on them, with an audit entry."""
    from orchestration.erasure import erase_everywhere
    from orchestration.spec_loader import load_definitions

    keys = [k for k in (key.encode() if key else None, bytes.fromhex(key_hex or "") or None) if k]
    if (where is None) == (not keys) or len(keys) > 1:
        raise click.UsageError("give exactly one of --where, --key or --key-hex")
    what = where if where is not None else f"key {keys[0]!r}"
    if not yes:
        click.confirm(
            f"Erase every record matching {what} and vacuum old versions away?", abort=True
        )
    settings = settings_of(ctx)
    report = erase_everywhere(
        settings.lake(),
        load_definitions(settings.definitions),
        where=where,
        key=keys[0] if keys else None,
        models=models,  # type: ignore[arg-type]
        online_store_url=settings.online_store_url,
        window_days=settings.retrain_window_days,
        holdout_days=settings.holdout_days,
    )
    click.echo(f"erased {report.records} records matching {what} (erasure {report.erasure_id})")
    for name, n in sorted(report.rows_by_table.items()):
        click.echo(f"  {name}: {n} rows deleted, old files vacuumed")
    if report.models.get("failed"):
        click.echo(f"  models not replaced: {report.models['failed']}")
    replaced = report.models.get("replaced") or {}
    if replaced:
        for old, new in sorted(replaced.items()):  # type: ignore[attr-defined]
            click.echo(f"  model {old} was trained on erased records: replaced by {new}")
        for move in report.models.get("aliases") or []:  # type: ignore[attr-defined]
            click.echo(f"  alias moved: {move}")
    elif report.models_to_retrain:
        click.echo(
            "  model versions trained on erased records (retrain them): "
            + ", ".join(report.models_to_retrain)
        )
    else:
        click.echo("  no model version was trained on these records")
