"""The decoder: bronze rows in, silver rows per subject and dead-letter rows out; no writes.

Each record is classified: a tombstone (null value), not Confluent-framed
(wrong magic byte or under 5 bytes), an unknown schema id, a body that does not
decode with its writer schema, or a record of a subject (named by the subject
strategy, :func:`lake.names.subject`), decoded with its own writer schema (or
resolved into a chosen version of the subject's schema) into the subject's
merged silver shape plus :data:`lake.SILVER_LINEAGE`.

Records are grouped by writer schema; a group whose schema the columnar path
supports is decoded in one go, anything it declines record by record with
fastavro (which also pinpoints the bad records). Schemas are looked up through
a :class:`ingest.schema_resolver.SchemaResolver`; nothing is written, so the
ingester, the rebuild and the scorer share it, and only the ingester's
:class:`ingest.silver_writer.SilverWriter` commits.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import fastavro
import numpy as np
import pyarrow as pa

from ingest.avro_arrow import SilverShape, converter, decode_body, silver_shape
from ingest.avro_columnar import decode_columnar, guarded_schema
from ingest.expectations import Expectations
from ingest.schema_resolver import SchemaResolver
from lake import DEAD_LETTER_SCHEMA, SILVER_LINEAGE, QualityResult, SchemaNotFound, parse_schema
from lake.names import KAFKA_OFFSET, KAFKA_PARTITION, UTC_MICROS, SubjectStrategy, subject

__all__ = ["BRONZE_COLUMNS", "Decoded", "Decoder"]

_COLUMNAR_MIN = 16  # smaller groups: per-record decoding is as fast
# The bronze columns a dead letter keeps, ``date`` last.
BRONZE_COLUMNS = ["topic", "partition", "offset", "timestamp", "key", "value", "headers"]
BRONZE_COLUMNS += ["schema_id", "date"]


@dataclass(frozen=True)
class Decoded:
    """Silver rows per subject (offset order) and dead-letter rows of one batch, and
    what each subject's expectations found."""

    silver: dict[str, pa.Table]
    dead: pa.Table
    quality: list[QualityResult] = field(default_factory=list)


@dataclass
class _Writer:
    parsed: Any
    convert: Any
    subject: str
    version: int
    arrow: pa.Schema  # this writer's (or the reader's) fields as silver types
    guarded: str | None  # the columnar path's schema, None if unsupported
    reader: Any = None  # a fastavro-parsed reader schema, to decode as that version


class Decoder:
    """Decodes bronze rows of one topic; caches writer schemas and silver shapes.

    With ``expectations``, decoded rows are judged per subject (see
    :mod:`ingest.expectations`): rows failing an ``error`` expectation become dead
    letters of kind ``expectation``.

    >>> import tempfile
    >>> from lake import Lake, SchemaStore, bronze_rows
    >>> store = SchemaStore.open(Lake(tempfile.mkdtemp()))
    >>> sid = store.register("t-value", '{"type":"record","name":"R","fields":'
    ...                      '[{"name":"x","type":"int"}]}').id
    >>> body = b"\\x00" + sid.to_bytes(4, "big") + b"\\x54"  # x = 42
    >>> rows = bronze_rows("t", [0, 0], [0, 1], [(1, 0)] * 2, [None] * 2, [body, None], [None] * 2)
    >>> out = Decoder("t", SchemaResolver(store)).decode(rows)
    >>> out.silver["t-value"].column("x").to_pylist(), out.dead.column("error_kind").to_pylist()
    ([42], ['tombstone'])
    """

    def __init__(
        self,
        topic: str,
        resolver: SchemaResolver,
        *,
        subject_strategy: SubjectStrategy = "topic",
        reader_version: int | None = None,
        expectations: Expectations | None = None,
    ) -> None:
        self.topic = topic
        self.expectations = expectations
        self.resolver = resolver
        self.subject_strategy = subject_strategy
        self.reader_version = reader_version
        self._writers: dict[int, _Writer] = {}
        self._shapes: dict[tuple[str, ...], SilverShape] = {}

    def forget_schemas(self) -> None:
        """Drop cached schemas (after registering one that was missing)."""
        self._writers.clear()
        self.resolver.forget()

    def _writer(self, schema_id: int) -> _Writer:
        w = self._writers.get(schema_id)
        if w is None:
            text = self.resolver.schema(schema_id)  # SchemaNotFound -> dead letter
            schema = json.loads(text)
            uses = dict(self.resolver.store.subjects_of(schema_id))
            wanted = subject(self.topic, self.subject_strategy, parse_schema(text).name)
            chosen = wanted if wanted in uses else next(iter(sorted(uses)), wanted)
            if chosen is None:
                raise SchemaNotFound(f"subject for schema id {schema_id}")
            if self.reader_version is None:
                w = _Writer(
                    fastavro.parse_schema(schema),
                    converter(schema),
                    chosen,
                    uses.get(chosen, 0),
                    silver_shape([text]).schema,
                    guarded_schema(schema),
                )
            else:  # Avro schema resolution, record by record, into the reader's fields
                reader = self.resolver.schema(
                    self.resolver.store.get(chosen, self.reader_version).id
                )
                w = _Writer(
                    fastavro.parse_schema(schema),
                    converter(json.loads(reader)),
                    chosen,
                    uses.get(chosen, 0),
                    silver_shape([reader]).schema,
                    None,
                    fastavro.parse_schema(json.loads(reader)),
                )
            self._writers[schema_id] = w
        return w

    def decode(self, rows: pa.Table) -> Decoded:
        """Silver rows per subject, and dead-letter rows, for bronze ``rows``."""
        dead_idx: list[int] = []
        kinds: list[str] = []
        messages: list[str] = []

        def bury(i: int, kind: str, msg: str) -> None:
            dead_idx.append(i)
            kinds.append(kind)
            messages.append(msg)

        values = rows.column("value").combine_chunks()
        ids = rows.column("schema_id").to_numpy(zero_copy_only=False)
        missing = ~np.asarray(values.is_valid())
        unframed = ~missing & np.asarray(rows.column("schema_id").is_null())
        for i in np.flatnonzero(missing).tolist():
            bury(i, "tombstone", "the record has no value (a tombstone)")
        for i in np.flatnonzero(unframed).tolist():
            v = values[i].as_py()
            bury(
                i,
                "not_confluent_framed",
                f"the value does not start with magic byte 0 and a 4-byte schema id "
                f"(first byte {v[:1].hex() or 'none'}, {len(v)} bytes)",
            )
        framed = np.flatnonzero(~missing & ~unframed)
        parts: dict[str, list[tuple[pa.Table, list[int], int, int]]] = defaultdict(list)
        for sid in np.unique(ids[framed]).tolist():
            idx_np = framed[ids[framed] == sid]
            try:
                w = self._writer(int(sid))
            except SchemaNotFound as e:
                for i in idx_np.tolist():
                    bury(
                        i,
                        "unknown_schema_id",
                        f"schema id {sid} is not registered ({e}); "
                        "register it, then run `eventlake dead-letters reprocess`",
                    )
                continue
            table = None
            if w.guarded is not None and len(idx_np) >= _COLUMNAR_MIN:
                table = decode_columnar(values.take(pa.array(idx_np)), w.guarded, w.arrow)
            ok: Any = idx_np
            if table is None:
                records, ok = [], []
                for i in idx_np.tolist():
                    try:
                        records.append(
                            decode_body(values[i].as_py()[5:], w.parsed, w.convert, w.reader)
                        )
                        ok.append(i)
                    except Exception as e:
                        bury(i, "decode_error", f"{type(e).__name__}: {e}")
                table, ok = _to_arrow(w.arrow, records, ok, bury)
            if table.num_rows:
                parts[w.subject].append((table, ok, int(sid), w.version))
        tables = {s: self._build(s, rows, p) for s, p in parts.items()}
        quality: list[QualityResult] = []
        if self.expectations:
            failed: list[tuple[int, int, str]] = []
            for s in sorted(tables):
                verdict = self.expectations.judge(self.topic, s, tables[s])
                tables[s] = verdict.kept
                failed += verdict.failed
                quality += verdict.results
            for i, msg in zip(_positions(rows, failed), (m for *_, m in failed), strict=True):
                bury(i, "expectation", msg)
        return Decoded(tables, _dead_rows(rows, dead_idx, kinds, messages), quality)

    def _build(
        self, subject: str, rows: pa.Table, parts: list[tuple[pa.Table, list[int], int, int]]
    ) -> pa.Table:
        """One silver table for ``subject``: the merged shape, defaults for fields a
        writer lacked, lineage columns, in offset order."""
        # One registry read per batch; the shape is parsed again only when it changed.
        history = tuple(self.resolver.store.history(subject))
        if self.reader_version is not None:
            history = history[: self.reader_version]  # versions are numbered from 1
        shape = self._shapes.get(history)
        if shape is None:
            shape = self._shapes[history] = silver_shape(history)
        pieces = []
        for table, idx, sid, version in parts:
            n = table.num_rows
            cols = []
            for f in shape.schema:
                if f.name in table.column_names:
                    cols.append(table.column(f.name).cast(f.type))
                else:
                    default = shape.defaults.get(f.name)
                    cols.append(
                        pa.array([default] * n, f.type)
                        if default is not None
                        else pa.nulls(n, f.type)
                    )
            src = rows.take(pa.array(np.asarray(idx, dtype=np.int64)))
            lineage = [
                src.column("topic"),
                src.column("partition"),
                src.column("offset"),
                src.column("timestamp"),
                pa.array(np.full(n, sid, np.int32)),
                pa.array(np.full(n, version, np.int32)),
                src.column("date"),
            ]
            cols += [c.cast(f.type) for f, c in zip(SILVER_LINEAGE, lineage, strict=True)]
            pieces.append(
                pa.Table.from_arrays(cols, schema=pa.schema([*shape.schema, *SILVER_LINEAGE]))
            )
        return pa.concat_tables(pieces).sort_by(
            [(KAFKA_PARTITION, "ascending"), (KAFKA_OFFSET, "ascending")]
        )


def _positions(rows: pa.Table, at: list[tuple[int, int, str]]) -> list[int]:
    """The row numbers in bronze ``rows`` of (partition, offset, _) coordinates."""
    if not at:
        return []
    keys = rows.column("partition").to_numpy().astype(np.int64) << 40
    keys |= rows.column("offset").to_numpy().astype(np.int64)
    order = np.argsort(keys, kind="stable")
    wanted = np.array([(p << 40) | o for p, o, _ in at], dtype=np.int64)
    return order[np.searchsorted(keys, wanted, sorter=order)].tolist()


def _to_arrow(
    schema: pa.Schema, records: list[dict[str, Any]], idx: list[int], bury: Any
) -> tuple[pa.Table, list[int]]:
    try:
        return pa.Table.from_pylist(records, schema=schema), idx
    except (pa.ArrowException, ValueError, TypeError, OverflowError):
        pass
    ok_rows, ok_idx = [], []
    for r, i in zip(records, idx, strict=True):
        try:
            pa.Table.from_pylist([r], schema=schema)
        except Exception as e:
            bury(i, "decode_error", f"does not fit the silver column types: {e}")
            continue
        ok_rows.append(r)
        ok_idx.append(i)
    return pa.Table.from_pylist(ok_rows, schema=schema), ok_idx


def _dead_rows(
    rows: pa.Table, dead_idx: list[int], kinds: list[str], messages: list[str]
) -> pa.Table:
    """Dead-letter rows for the bronze ``rows`` at ``dead_idx``, in offset order."""
    src = rows.take(pa.array(dead_idx, pa.int64()))
    n = src.num_rows
    if n and dead_idx != sorted(dead_idx):
        order = np.argsort(dead_idx)
        src = src.take(pa.array(order))
        kinds = [kinds[k] for k in order]
        messages = [messages[k] for k in order]
    now = pa.array(np.full(n, time.time_ns() // 1000, dtype=np.int64)).cast(UTC_MICROS)
    return pa.table(
        {
            **{c: src.column(c) for c in BRONZE_COLUMNS[:-1]},
            "error_kind": pa.array(kinds, pa.string()),
            "error_message": pa.array(messages, pa.string()),
            "quarantined_at": now,
            "date": src.column("date"),
        }
    ).cast(DEAD_LETTER_SCHEMA)
