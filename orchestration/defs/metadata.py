"""Metadata every asset shows: a table's schema, rows, Delta version and URI; the days
a partitioned run covers."""

from __future__ import annotations

import datetime as dt
from typing import Any

import dagster as dg
import pyarrow as pa

from lake import Lake

__all__ = ["days", "table_metadata"]


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
