"""The ``quality`` table: what each data-quality expectation found, batch by batch.

One row per expectation and decoded batch: which topic and subject, the
expectation's name, check and severity, how many records it judged and how many
failed, one failing value as an example, and when. Records that failed an
``error`` expectation are in ``dead_letters`` (kind ``expectation``); ``warn``
failures are only counted here.

>>> import tempfile
>>> from lake import Lake
>>> lake = Lake(tempfile.mkdtemp())
>>> r = QualityResult("orders", "orders-value", "km_positive", "between", "error", 10, 2, "-1.0")
>>> QualityLog.open(lake).append([r]).rows
1
>>> read_quality(lake, subject="orders-value").column("failed").to_pylist()
[2]
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import astuple, dataclass

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable, write_deltalake

from lake.catalog import Lake
from lake.fenced import AppendResult
from lake.names import QUALITY, UTC_MICROS

__all__ = ["QUALITY_SCHEMA", "QualityLog", "QualityResult", "read_quality"]

QUALITY_SCHEMA = pa.schema(
    [
        pa.field("topic", pa.string(), nullable=False),
        pa.field("subject", pa.string(), nullable=False),
        pa.field("expectation", pa.string(), nullable=False),
        pa.field("check", pa.string(), nullable=False),
        pa.field("severity", pa.string(), nullable=False),
        pa.field("records", pa.int64(), nullable=False),
        pa.field("failed", pa.int64(), nullable=False),
        pa.field("example", pa.string()),
        pa.field("evaluated_at", UTC_MICROS, nullable=False),
        pa.field("date", pa.date32(), nullable=False),
    ]
)


@dataclass(frozen=True)
class QualityResult:
    """One expectation's verdict on one batch of one subject."""

    topic: str
    subject: str
    expectation: str
    check: str
    severity: str
    records: int
    failed: int
    example: str | None = None


class QualityLog:
    """The lake's ``quality`` table, appended to by ingest."""

    def __init__(self, table: DeltaTable) -> None:
        self._table = table

    @classmethod
    def open(cls, lake: Lake) -> QualityLog:
        """Open (creating if needed) the ``quality`` table of ``lake``."""
        table = lake.open_or_create(
            QUALITY,
            QUALITY_SCHEMA,
            partition_by=["date"],
            description="Data-quality expectations: records judged and failed per batch",
        )
        return cls(table)

    def append(self, results: Sequence[QualityResult]) -> AppendResult:
        """Append ``results`` in one commit (nothing is committed for none)."""
        if not results:
            return AppendResult(None, 0, {}, 0)
        now = dt.datetime.now(dt.UTC)
        columns = list(zip(*map(astuple, results), strict=True))
        names = QUALITY_SCHEMA.names[: len(columns)]
        data = {n: list(c) for n, c in zip(names, columns, strict=True)}
        data["evaluated_at"] = [now] * len(results)
        data["date"] = [now.date()] * len(results)
        table = pa.table(data).cast(QUALITY_SCHEMA)
        write_deltalake(self._table, table, mode="append")
        self._table.update_incremental()
        return AppendResult(self._table.version(), table.num_rows, {}, 0)


def read_quality(
    lake: Lake, *, subject: str | None = None, since: dt.datetime | None = None
) -> pa.Table:
    """The ``quality`` rows (of ``subject``, evaluated at or after ``since``), oldest
    first; empty if nothing was judged yet."""
    if not lake.exists(QUALITY):
        return QUALITY_SCHEMA.empty_table()
    flt = None
    if subject is not None:
        flt = pc.field("subject") == subject
    if since is not None:
        later = pc.field("evaluated_at") >= pa.scalar(since, UTC_MICROS)
        flt = later if flt is None else flt & later
    dataset = lake.table(QUALITY).to_pyarrow_dataset()
    return dataset.to_table(filter=flt).sort_by("evaluated_at")
