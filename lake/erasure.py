"""Erasure (GDPR): delete a person's records from every table, for good, with an audit trail.

Records are found by a predicate on decoded fields (``user_id = 42``, evaluated
in every silver table that has those columns) or by their Kafka key. Their
coordinates (topic, partition, offset) are then deleted from bronze, silver,
dead letters and every derived table carrying the ``_kafka_*`` lineage
columns; derived tables without lineage but with the predicate's columns
(features keyed by entity) are deleted by the predicate itself. The files that
held them are vacuumed with zero retention, so no old Delta version can bring
them back, and one row lands in the ``erasures`` audit table: when, what, how
many rows per table, and which model versions had trained on erased records
(the model registry's owner answers that: pass its ``trained_on``).

The exactly-once fences are ``txn`` actions, which deletes leave alone: an
ingest restarted after an erasure does not read the erased offsets again.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import polars as pl
import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from lake.catalog import Lake
from lake.errors import LakeError
from lake.maintenance import maintain
from lake.names import COORDINATES, DEAD_LETTERS, ERASURES, UTC_MICROS, layer_of

__all__ = [
    "ERASURES_SCHEMA",
    "ErasedRecords",
    "ErasureError",
    "ErasureReport",
    "delete_records",
    "erase",
    "erased_records",
]

log = logging.getLogger(__name__)

ErasedRecords = dict[tuple[str, int], list[int]]  # (topic, partition) -> offsets
ERASURES_SCHEMA = pa.schema(
    [
        pa.field("erasure_id", pa.string(), nullable=False),
        pa.field("erased_at", UTC_MICROS, nullable=False),
        pa.field("predicate", pa.string()),
        pa.field("key", pa.binary()),
        pa.field("records", pa.int64(), nullable=False),
        pa.field("rows_by_table", pa.string(), nullable=False),  # JSON {table: rows}
        pa.field("models_to_retrain", pa.string(), nullable=False),  # JSON ["name:version"]
        pa.field("models", pa.string()),  # JSON {policy, replaced: {old: new}, aliases: [...]}
    ]
)
_CHUNK = 5_000  # offsets per delete predicate


class ErasureError(LakeError):
    """Raised when an erasure request cannot be carried out as asked."""


@dataclass
class ErasureReport:
    """What :func:`erase` deleted, and which model versions must be retrained."""

    erasure_id: str
    records: int  # distinct Kafka records erased
    rows_by_table: dict[str, int] = field(default_factory=dict)
    models_to_retrain: list[str] = field(default_factory=list)
    models: dict[str, object] = field(default_factory=dict)  # what was done about them


def erase(
    lake: Lake,
    *,
    where: str | None = None,
    key: bytes | None = None,
    trained_on: Callable[[ErasedRecords], list[str]] | None = None,
    also: Callable[[ErasedRecords, ErasureReport], None] | None = None,
    records: ErasedRecords | None = None,
) -> ErasureReport:
    """Erase the records matching ``where`` (SQL on decoded fields) or Kafka ``key``.

    ``trained_on`` names the model versions (``"name:version"``) that learned
    from any of the erased records; the report and the audit row carry them.
    ``also`` is the caller's own part (tables and state the lake cannot
    recognise, models): it gets the erased records and the report, adds what it
    did to the report, and the audit row records that too. ``records``: what
    :func:`erased_records` found for the same ``where``/``key``, if the caller
    looked already (the silver tables are not scanned twice).

    >>> import tempfile
    >>> erase(Lake(tempfile.mkdtemp()), where="user_id = 42")
    Traceback (most recent call last):
    ...
    lake.erasure.ErasureError: no silver table has the columns of 'user_id = 42'; ...
    """
    if (where is None) == (key is None):
        raise ErasureError("give exactly one of a predicate (--where) or a key (--key)")
    names = lake.names()
    coords = records if records is not None else erased_records(lake, where=where, key=key)
    report = ErasureReport(uuid.uuid4().hex, sum(len(o) for o in coords.values()))
    for name in names:
        if name == ERASURES:
            continue
        table = lake.table(name)
        cols = set(pa.schema(table.schema().to_arrow()).names)
        layer, rest = layer_of(name)
        if layer == "bronze":
            n = delete_records(table, coords, "topic", "partition", "offset", rest)
        elif name == DEAD_LETTERS:
            n = delete_records(table, coords, "topic", "partition", "offset")
            if key is not None:
                n += _delete(table, f"key = X'{key.hex()}'")
        elif cols.issuperset(COORDINATES):
            n = delete_records(table, coords, *COORDINATES)
        elif where is not None and _has_columns(lake, name, where):
            n = _delete(table, where)
        else:
            continue
        if n:
            report.rows_by_table[name] = n
            maintain(lake, name, compact=False, retention_hours=0)
    report.models_to_retrain = sorted(trained_on(coords)) if trained_on and coords else []
    if also is not None:
        also(coords, report)
    _audit(lake, report, where, key)
    log.info("erasure %s: %s", report.erasure_id, report)
    return report


def erased_records(
    lake: Lake, *, where: str | None = None, key: bytes | None = None
) -> ErasedRecords:
    """The Kafka coordinates of the records matching ``where`` (in any silver table
    with its columns) or Kafka ``key`` (in bronze and dead letters): what
    :func:`erase` deletes.

    >>> import tempfile
    >>> erased_records(Lake(tempfile.mkdtemp()), key=b"user-42")
    {}
    """
    names = lake.names()
    if where is not None:
        return _find_by_predicate(lake, names, where)
    return _find_by_key(lake, names, key)


def _collect(frames: list[pl.DataFrame]) -> ErasedRecords:
    out: dict[tuple[str, int], set[int]] = defaultdict(set)
    for df in frames:
        for t, p, o in df.iter_rows():
            out[(t, p)].add(o)
    return {k: sorted(v) for k, v in sorted(out.items())}


def _has_columns(lake: Lake, name: str, where: str) -> bool:
    try:  # resolving the plan finds unknown columns; nothing is read
        _query(lake, name, where, "1").collect_schema()
    except pl.exceptions.ColumnNotFoundError:
        return False
    return True


def _query(lake: Lake, name: str, where: str, select: str) -> pl.LazyFrame:
    ctx = pl.SQLContext(t=lake.scan(name))
    return ctx.execute(f"SELECT {select} FROM t WHERE {where}")


def _find_by_predicate(lake: Lake, names: list[str], where: str) -> ErasedRecords:
    frames, matched = [], False
    for name in (n for n in names if layer_of(n)[0] == "silver"):
        try:
            frames.append(_query(lake, name, where, ", ".join(COORDINATES)).collect())
            matched = True
        except pl.exceptions.ColumnNotFoundError:
            continue
    if not matched:
        raise ErasureError(
            f"no silver table has the columns of {where!r}; check the column names with "
            "`eventlake tables`"
        )
    return _collect(frames)


def _find_by_key(lake: Lake, names: list[str], key: bytes | None) -> ErasedRecords:
    frames = []
    for name in (n for n in names if layer_of(n)[0] == "bronze" or n == DEAD_LETTERS):
        frames.append(
            lake.scan(name)
            .filter(pl.col("key") == pl.lit(key, pl.Binary))
            .select("topic", "partition", "offset")
            .collect()
        )
    return _collect(frames)


def _delete(table: DeltaTable, predicate: str) -> int:
    metrics = table.delete(predicate)
    return int(metrics.get("num_deleted_rows", 0))


def delete_records(
    table: DeltaTable,
    coords: ErasedRecords,
    topic_col: str,
    part_col: str,
    off_col: str,
    only: str = "",
) -> int:
    """Delete the rows of ``table`` whose (topic, partition, offset) columns name one of
    ``coords`` (of topic ``only``, if given); return how many. Old files stay until a
    vacuum (:func:`erase` vacuums with zero retention).

    >>> import tempfile
    >>> from deltalake import write_deltalake
    >>> path = tempfile.mkdtemp()
    >>> write_deltalake(path, pa.table({"t": ["o", "o"], "p": [0, 0], "o": [1, 2]}))
    >>> delete_records(DeltaTable(path), {("o", 0): [2]}, "t", "p", "o")
    1
    """
    n = 0
    for (topic, partition), offsets in coords.items():
        if only and topic != only:
            continue
        for i in range(0, len(offsets), _CHUNK):
            chunk = ", ".join(map(str, offsets[i : i + _CHUNK]))
            n += _delete(
                table,
                f'"{topic_col}" = \'{topic}\' AND "{part_col}" = {partition} '
                f'AND "{off_col}" IN ({chunk})',
            )
    return n


def _audit(lake: Lake, report: ErasureReport, where: str | None, key: bytes | None) -> None:
    row = pa.table(
        {
            "erasure_id": [report.erasure_id],
            "erased_at": [dt.datetime.now(dt.UTC)],
            "predicate": [where],
            "key": [key],
            "records": [report.records],
            "rows_by_table": [json.dumps(report.rows_by_table, sort_keys=True)],
            "models_to_retrain": [json.dumps(report.models_to_retrain)],
            "models": [json.dumps(report.models, sort_keys=True) if report.models else None],
        },
        schema=ERASURES_SCHEMA,
    )
    write_deltalake(
        lake.uri(ERASURES),
        row,
        mode="append",
        schema_mode="merge",  # audit tables from before the models column gain it
        storage_options=lake.storage_options,
    )
