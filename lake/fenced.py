"""Appends fenced by Kafka offsets kept in the Delta log: the exactly-once write.

A table that receives records of Kafka partitions keeps, per partition, the
last offset it holds as a Delta ``txn`` action (``app_id(partition)``). An
append drops rows at or below that offset, writes the rest with updated ``txn``
actions in the same commit, and retries when delta-rs refuses the commit
because a concurrent one touched the same app ids. Bronze, silver and dead
letters all write this way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, Transaction, WriterProperties, write_deltalake
from deltalake.exceptions import CommitFailedError

from lake.errors import OffsetConflict
from lake.offsets import txn_versions

__all__ = ["AppendResult", "fenced_append", "offset_ranges"]

log = logging.getLogger(__name__)
_MAX_CONFLICT_RETRIES = 20


@dataclass(frozen=True)
class AppendResult:
    """What one fenced commit wrote.

    ``version`` is the Delta version created (None if nothing was committed),
    ``ranges`` maps partition -> (first, last) offset written, ``dropped``
    counts rows fenced off as already committed.
    """

    version: int | None
    rows: int
    ranges: dict[int, tuple[int, int]]
    dropped: int


def offset_ranges(rows: pa.Table, partition: str, offset: str) -> dict[int, tuple[int, int]]:
    """``{partition: (first offset, last offset)}`` of ``rows``.

    >>> offset_ranges(pa.table({"p": [0, 1, 0], "o": [5, 2, 7]}), "p", "o")
    {0: (5, 7), 1: (2, 2)}
    """
    parts = rows.column(partition).to_numpy()
    offs = rows.column(offset).to_numpy()
    out: dict[int, tuple[int, int]] = {}
    for p in np.unique(parts):
        o = offs[parts == p]
        out[int(p)] = (int(o.min()), int(o.max()))
    return out


def fenced_append(
    table: DeltaTable,
    rows: pa.Table,
    *,
    app_id: Callable[[int], str],
    partition: str,
    offset: str,
    partition_by: Sequence[str] | None = None,
    extra_txns: Callable[[], Sequence[Transaction]] | None = None,
    commit_empty: bool = False,
    schema_mode: Literal["merge"] | None = None,
    storage_options: Mapping[str, str] | None = None,
    custom_metadata: Mapping[str, str] | None = None,
    writer_properties: WriterProperties | None = None,
    label: str = "",
) -> AppendResult:
    """Append ``rows`` to ``table`` at most once per (partition, offset).

    ``extra_txns`` adds ``txn`` actions to the commit (asked again on each
    retry); with ``commit_empty`` a commit is made even when no row is left, so
    those actions land. Raises :class:`OffsetConflict` if concurrent commits
    never settle.
    """
    label = label or table.table_uri
    for _ in range(_MAX_CONFLICT_RETRIES):
        table.update_incremental()
        ranges = offset_ranges(rows, partition, offset)
        committed = txn_versions(table, app_id, ranges)
        stale = {p: c for p, c in committed.items() if c is not None and ranges[p][0] <= c}
        dropped = 0
        if stale:
            before = rows.num_rows
            parts = rows.column(partition).to_numpy()
            offs = rows.column(offset).to_numpy()
            keep = np.ones(len(parts), dtype=bool)
            for p, c in stale.items():
                keep &= ~((parts == p) & (offs <= c))
            rows = rows.filter(keep)
            dropped = before - rows.num_rows
            log.warning("%s: dropped %d rows already committed (%s)", label, dropped, stale)
            ranges = offset_ranges(rows, partition, offset)
        txns = [Transaction(app_id(p), last) for p, (_, last) in ranges.items()]
        txns += list(extra_txns() if extra_txns else [])
        if rows.num_rows == 0 and not (commit_empty and txns):
            return AppendResult(None, 0, {}, dropped)
        try:
            write_deltalake(
                table,
                rows,
                mode="append",
                partition_by=list(partition_by) if partition_by else None,
                schema_mode=schema_mode,
                storage_options=dict(storage_options) if storage_options else None,
                writer_properties=writer_properties or WriterProperties(),
                commit_properties=CommitProperties(
                    app_transactions=txns, custom_metadata=dict(custom_metadata or {})
                ),
            )
        except CommitFailedError as e:
            if "Concurrent transaction" not in str(e):
                raise
            log.info("%s: concurrent commit on the same partitions; rechecking", label)
            continue
        return AppendResult(table.version(), rows.num_rows, ranges, dropped)
    raise OffsetConflict(table.table_uri, _MAX_CONFLICT_RETRIES)
