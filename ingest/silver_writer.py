"""Decoding bronze records into silver, and the undecodable into dead letters.

Each record is classified: a tombstone (null value), not Confluent-framed
(wrong magic byte or under 5 bytes), an unknown schema id, a body that does not
decode with its writer schema, or a record of a subject: decoded with its own
writer schema into ``silver/<subject>``. The order of commits makes the step
idempotent: silver tables first (fenced by offset), then dead letters together
with the decode cursor. A crash in between is repaired by :meth:`repair`,
which decodes again from the cursor; the fences drop what had landed.

A batch without dead letters needs no dead-letter commit, so the cursor is
committed only with dead letters, at most :data:`CURSOR_EVERY_S` after the last
one, and on :meth:`flush`: one commit fewer per batch, and a repair decodes
again at most that many seconds of records.
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import fastavro
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingest.avro_arrow import SilverShape, converter, decode_body, silver_shape
from ingest.avro_columnar import decode_columnar, guarded_schema
from ingest.schema_resolver import SchemaResolver
from lake import BronzeTable, SchemaNotFound, parse_schema
from lake.dead_letters import DEAD_LETTER_SCHEMA, DeadLetters
from lake.silver import LINEAGE, SilverTable

__all__ = ["DecodeSummary", "SilverWriter", "SubjectStrategy"]

log = logging.getLogger(__name__)
SubjectStrategy = Literal["topic", "record", "topic_record"]
_COLUMNAR_MIN = 16  # smaller groups: per-record decoding is as fast
CURSOR_EVERY_S = 5.0  # longest a decode cursor lags behind silver
# The bronze columns a dead letter keeps, ``date`` last.
_BRONZE_COLUMNS = ["topic", "partition", "offset", "timestamp", "key", "value", "headers"]
_BRONZE_COLUMNS += ["schema_id", "date"]


@dataclass
class DecodeSummary:
    """Rows written per silver subject, dead letters per error kind."""

    silver: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    dead: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, other: DecodeSummary) -> None:
        for k, v in other.silver.items():
            self.silver[k] += v
        for k, v in other.dead.items():
            self.dead[k] += v

    def __str__(self) -> str:
        parts = [f"silver/{s} +{n}" for s, n in sorted(self.silver.items())]
        parts += [f"dead letters +{n} {k}" for k, n in sorted(self.dead.items())]
        return ", ".join(parts) or "nothing to decode"


@dataclass
class _Writer:
    parsed: Any
    convert: Any
    subject: str
    version: int
    arrow: pa.Schema  # this writer's (or the reader's) fields as silver types
    guarded: str | None  # the columnar path's schema, None if unsupported
    reader: Any = None  # a fastavro-parsed reader schema, to decode as that version


class SilverWriter:
    """Decodes bronze rows of one topic into silver tables and dead letters."""

    def __init__(
        self,
        lake_root: str,
        topic: str,
        resolver: SchemaResolver,
        *,
        subject_strategy: SubjectStrategy = "topic",
        storage_options: dict[str, str] | None = None,
        reader_version: int | None = None,
    ) -> None:
        self.lake_root = lake_root
        self.reader_version = reader_version
        self.topic = topic
        self.resolver = resolver
        self.subject_strategy = subject_strategy
        self._storage_options = storage_options
        self.dead_letters = DeadLetters.open(lake_root, storage_options=storage_options)
        self._silver: dict[str, SilverTable] = {}
        self._writers: dict[int, _Writer] = {}
        self._shapes: dict[tuple[str, ...], SilverShape] = {}
        self._pending: dict[int, int] = {}  # decode cursor not committed yet
        self._cursor_at = time.monotonic()

    # -- schemas ---------------------------------------------------------------

    def _writer(self, schema_id: int) -> _Writer:
        w = self._writers.get(schema_id)
        if w is None:
            text = self.resolver.schema(schema_id)  # SchemaNotFound -> dead letter
            schema = json.loads(text)
            uses = dict(self.resolver.registry.subjects_of(schema_id))
            full = parse_schema(text).name
            wanted = {
                "topic": f"{self.topic}-value",
                "record": full,
                "topic_record": f"{self.topic}-{full}",
            }[self.subject_strategy]
            subject = wanted if wanted in uses else next(iter(sorted(uses)), wanted)
            if subject is None:
                raise SchemaNotFound(f"subject for schema id {schema_id}")
            if self.reader_version is None:
                w = _Writer(
                    fastavro.parse_schema(schema),
                    converter(schema),
                    subject,
                    uses.get(subject, 0),
                    silver_shape([text]).schema,
                    guarded_schema(schema),
                )
            else:  # Avro schema resolution, record by record, into the reader's fields
                reader = self.resolver.registry.get(subject, self.reader_version).schema
                w = _Writer(
                    fastavro.parse_schema(schema),
                    converter(json.loads(reader)),
                    subject,
                    uses.get(subject, 0),
                    silver_shape([reader]).schema,
                    None,
                    fastavro.parse_schema(json.loads(reader)),
                )
            self._writers[schema_id] = w
        return w

    def forget_schemas(self) -> None:
        """Drop cached schemas (after registering one that was missing)."""
        self._writers.clear()
        self.resolver.forget()

    # -- decoding ----------------------------------------------------------------

    def write(self, bronze_rows: pa.Table) -> DecodeSummary:
        """Decode ``bronze_rows`` (of this topic); commit; summarize.

        Rows decoded before are dropped by the silver and dead-letter fences.
        """
        summary = DecodeSummary()
        if bronze_rows.num_rows == 0:
            return summary
        parts = bronze_rows.column("partition").to_numpy()
        offs = bronze_rows.column("offset").to_numpy()
        for p in np.unique(parts).tolist():
            self._pending[p] = max(int(offs[parts == p].max()), self._pending.get(p, -1))
        tables, dead = self.decode(bronze_rows)
        for subject, data in tables.items():
            summary.silver[subject] += self._table(subject).append(self.topic, data).rows
        for k in dead.column("error_kind").to_pylist():
            summary.dead[k] += 1
        if dead.num_rows or time.monotonic() - self._cursor_at >= CURSOR_EVERY_S:
            self._quarantine(dead)
        return summary

    def flush(self) -> None:
        """Commit the decode cursor if it lags behind what was written."""
        if self._pending:
            self._quarantine(DEAD_LETTER_SCHEMA.empty_table())

    def _quarantine(self, dead: pa.Table) -> None:
        self.dead_letters.append(self.topic, dead, self._pending)
        self._pending = {}
        self._cursor_at = time.monotonic()

    def table_uris(self) -> list[str]:
        """The silver tables written so far by this writer."""
        return [t.uri for t in self._silver.values()]

    def _table(self, subject: str) -> SilverTable:
        table = self._silver.get(subject)
        if table is None:
            table = self._silver[subject] = SilverTable(
                self.lake_root, subject, self._storage_options
            )
        return table

    def decode(self, rows: pa.Table) -> tuple[dict[str, pa.Table], pa.Table]:
        """Silver rows per subject, and dead-letter rows, for bronze ``rows``; no commit.

        Records are grouped by writer schema; a group whose schema the columnar
        path supports is decoded in one go, anything it declines record by
        record with fastavro (which also pinpoints the bad records).
        """
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
                table, ok = self._to_arrow(w.arrow, records, ok, bury)
            if table.num_rows:
                parts[w.subject].append((table, ok, int(sid), w.version))
        tables = {subject: self._build(subject, rows, p) for subject, p in parts.items()}
        return tables, _dead_rows(rows, dead_idx, kinds, messages)

    @staticmethod
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

    def _build(
        self, subject: str, rows: pa.Table, parts: list[tuple[pa.Table, list[int], int, int]]
    ) -> pa.Table:
        """One silver table for ``subject``: the merged shape, defaults for fields a
        writer lacked, lineage columns, in offset order."""
        # One registry read per batch; the shape is parsed again only when it changed.
        history = tuple(self.resolver.registry.history(subject))
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
            cols += [c.cast(f.type) for f, c in zip(LINEAGE, lineage, strict=True)]
            pieces.append(pa.Table.from_arrays(cols, schema=pa.schema([*shape.schema, *LINEAGE])))
        return pa.concat_tables(pieces).sort_by(
            [("_kafka_partition", "ascending"), ("_kafka_offset", "ascending")]
        )

    # -- repair and reprocess -----------------------------------------------------

    def repair(self, bronze: BronzeTable, partitions: Iterable[int]) -> DecodeSummary:
        """Decode bronze records past the decode cursor (after a crash between commits)."""
        summary = DecodeSummary()
        parts = list(partitions)
        cursor = self.dead_letters.decoded(self.topic, parts)
        dataset = bronze.delta.to_pyarrow_dataset()
        for p in parts:
            c = cursor[p]
            flt = pc.field("partition") == p
            if c is not None:
                flt = flt & (pc.field("offset") > c)
            rows = dataset.to_table(filter=flt).sort_by("offset")
            if rows.num_rows:
                summary.add(self.write(rows))
        self.flush()
        if summary.silver or summary.dead:
            log.info("%s: decoded records the last run had not: %s", self.topic, summary)
        return summary

    def reprocess(self) -> DecodeSummary:
        """Decode this topic's dead letters again (after the cause was fixed).

        Records that now decode move to silver exactly once (an anti-join makes a
        retry add nothing) and then leave the dead letters; the rest stay.
        """
        self.forget_schemas()
        dead = self.dead_letters.read(self.topic)
        summary = DecodeSummary()
        if dead.num_rows == 0:
            return summary
        tables, still = self.decode(dead.select(_BRONZE_COLUMNS))
        for subject, data in tables.items():
            self._table(subject).append_missing(data)
            summary.silver[subject] += data.num_rows
            for p in np.unique(data.column("_kafka_partition").to_numpy()):
                offs = data.filter(pc.equal(data.column("_kafka_partition"), int(p)))
                self.dead_letters.remove(
                    self.topic, int(p), offs.column("_kafka_offset").to_pylist()
                )
        for k in still.column("error_kind").to_pylist():
            summary.dead[k] += 1
        log.info("%s: reprocessed %d dead letters: %s", self.topic, dead.num_rows, summary)
        return summary


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
    now = pa.array(np.full(n, time.time_ns() // 1000, dtype=np.int64)).cast(
        pa.timestamp("us", tz="UTC")
    )
    return pa.table(
        {
            **{c: src.column(c) for c in _BRONZE_COLUMNS[:-1]},
            "error_kind": pa.array(kinds, pa.string()),
            "error_message": pa.array(messages, pa.string()),
            "quarantined_at": now,
            "date": src.column("date"),
        }
    ).cast(DEAD_LETTER_SCHEMA)
