"""``eventlake replay silver | kafka``: rebuilding from the lake, putting back into Kafka."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import click
from tqdm import tqdm

from orchestration.cli.common import friendly_errors, settings_of

__all__ = ["replay"]


@contextmanager
def _progress(what: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar of records with rate and time left, on stderr."""
    bar = tqdm(desc=what, unit=" records", dynamic_ncols=True)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        yield update
    finally:
        bar.close()


def _day(value: str | None) -> dt.date | None:
    return dt.date.fromisoformat(value) if value else None


@click.group()
def replay() -> None:
    """Rebuild silver from bronze, or re-publish bronze to Kafka."""


@replay.command("silver")
@click.option("--subject", default=None, help="Silver subject to rebuild (e.g. orders-value).")
@click.option("--topic", default=None, help="Or: the bronze topic whose silver to rebuild.")
@click.option("--from", "start", default=None, help="First day (YYYY-MM-DD), inclusive.")
@click.option("--to", "end", default=None, help="Last day (YYYY-MM-DD), inclusive.")
@click.option("--all", "everything", is_flag=True, help="Every day in bronze.")
@click.option(
    "--reader-version",
    type=int,
    default=None,
    help="Decode into this version of the subject's schema instead of each writer's.",
)
@click.pass_context
@friendly_errors
def replay_silver(
    ctx: click.Context,
    subject: str | None,
    topic: str | None,
    start: str | None,
    end: str | None,
    everything: bool,
    reader_version: int | None,
) -> None:
    """Rebuild silver (and dead letters) of a topic from bronze for a range of days.

    With --topic, every silver table the topic feeds is rebuilt for those days;
    with --subject, that subject's table from each topic that carries it. Other
    days are not touched, and a day whose result is unchanged is not rewritten.
    """
    from ingest import SchemaResolver, rebuild_silver
    from lake import SchemaStore, subject_topics
    from lake.names import silver

    if everything == bool(start or end):
        raise click.UsageError("give --all, or a range with --from and/or --to")
    if (subject is None) == (topic is None):
        raise click.UsageError("give --subject or --topic")
    settings = settings_of(ctx)
    lake = settings.lake()
    topics = [topic] if topic else subject_topics(lake, subject, settings.subject_strategy)  # type: ignore[arg-type]
    if not topics:
        raise click.UsageError(
            f"no topic is known to carry subject {subject!r} yet (nothing decoded); pass --topic"
        )
    resolver = SchemaResolver(SchemaStore.open(lake), settings.registry_url)
    for t in topics:
        with _progress(f"rebuilding silver of {t}") as progress:
            summary = rebuild_silver(
                lake,
                t,
                resolver,
                start=_day(start),
                end=_day(end),
                reader_version=reader_version,
                subject_strategy=settings.subject_strategy,
                subjects=None if subject is None else {subject},
                progress=progress,
                expectations=settings.expectations_of(lake),
            )
        click.echo(f"rebuilt {t}: {summary}")
        for s, n in sorted(summary.silver_rows.items()):
            click.echo(f"  {silver(s)}: {n:,} rows")
        click.echo(f"  dead letters: {summary.dead_letters:,}")


def _offset_or_time(value: str | None) -> tuple[int | None, dt.datetime | None]:
    if value is None:
        return None, None
    if value.isdigit():
        return int(value), None
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is neither an offset nor an ISO 8601 time (2026-11-22T10:00:00)"
        ) from None
    return None, when if when.tzinfo else when.replace(tzinfo=dt.UTC)


@replay.command("kafka")
@click.option("--topic", required=True, help="Bronze topic to re-send.")
@click.option("--to-topic", default=None, help="Target topic (default: the same name).")
@click.option("--from", "start", default=None, help="First offset (inclusive) or ISO time.")
@click.option("--to", "end", default=None, help="Last offset (inclusive) or ISO time (exclusive).")
@click.pass_context
@friendly_errors
def replay_kafka(
    ctx: click.Context, topic: str, to_topic: str | None, start: str | None, end: str | None
) -> None:
    """Re-publish bronze records to Kafka byte for byte, exactly once (transactions)."""
    from ingest import republish

    settings = settings_of(ctx)
    if not settings.kafka_bootstrap_servers:
        raise click.UsageError(
            "no broker: set EVENTLAKE_KAFKA_BOOTSTRAP_SERVERS (`eventlake broker` prints it)"
        )
    from_offset, from_time = _offset_or_time(start)
    to_offset, to_time = _offset_or_time(end)
    with _progress(f"re-publishing {topic}") as progress:
        summary = republish(
            settings.lake(),
            topic,
            settings.kafka_bootstrap_servers,
            to_topic=to_topic,
            from_offset=from_offset,
            to_offset=to_offset,
            from_time=from_time,
            to_time=to_time,
            broker_wait_s=settings.broker_wait_s,
            client_options=settings.kafka_client(),
            progress=progress,
        )
    resumed = f"; resumed after {summary.resumed_from}" if summary.resumed_from else ""
    click.echo(
        f"re-published {summary.records:,} records of bronze/{topic} to {summary.target} in "
        f"{summary.transactions} transactions ({summary.seconds:.1f} s){resumed}"
    )
    for p, n in sorted(summary.per_partition.items()):
        click.echo(f"  partition {p}: {n:,} records")
