"""Metadata every asset shows: a table's schema, rows, Delta version and URI; for a
partitioned run, the days it covers and the rows of those days."""

from __future__ import annotations

import datetime as dt
from typing import Any

import dagster as dg
import polars as pl
import pyarrow as pa

from lake import Lake
from lake.names import DATE

__all__ = ["days", "days_metadata", "table_metadata"]


def table_metadata(lake: Lake, name: str) -> dict[str, Any]:
    """Column schema, row count, Delta version and URI of table ``name`` ({} if absent)."""
    if not lake.exists(name):
        return {}
    table = lake.table(name)
    schema = pa.schema(table.schema().to_arrow())
    return {
        "dagster/column_schema": dg.TableSchema(
            columns=[dg.TableColumn(f.name, str(f.type)) for f in schema]
        ),
        "dagster/row_count": lake.info(name).rows,
        "delta_version": table.version(),
        "uri": dg.MetadataValue.path(table.table_uri),
    }


def days(context: dg.AssetExecutionContext) -> tuple[dt.date, dt.date]:
    """First and last day (inclusive) of the run's partition range."""
    window = context.partition_time_window
    return window.start.date(), (window.end - dt.timedelta(days=1)).date()


def days_metadata(lake: Lake, name: str, start: dt.date, end: dt.date) -> dict[str, Any]:
    """:func:`table_metadata` for a run over days ``start..end`` of table ``name``
    (partitioned by ``_date``): ``dagster/row_count`` is the rows of those days, so each
    partition shows its own; the whole table's count is ``table_rows``.

    >>> days_metadata(Lake("/nowhere"), "silver.orders", dt.date(2026, 11, 1), dt.date(2026, 11, 2))
    {'days': '2026-11-01..2026-11-02', 'dagster/row_count': 0}
    """
    meta = table_metadata(lake, name)
    if not meta:
        return {"days": f"{start}..{end}", "dagster/row_count": 0}
    rows = lake.scan(name).filter(pl.col(DATE).is_between(start, end)).select(pl.len())
    return meta | {
        "days": f"{start}..{end}",
        "dagster/row_count": rows.collect().item(),
        "table_rows": meta["dagster/row_count"],
    }
