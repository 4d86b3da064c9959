"""Writing decoded records: silver tables, then dead letters with the decode cursor.

:class:`SilverWriter` runs the commit protocol around the pure
:class:`ingest.decoder.Decoder`. The order of commits makes each step
idempotent: silver tables first (fenced by offset), then dead letters together
with the decode cursor. A crash in between is repaired by :meth:`repair`,
which decodes again from the cursor; the fences drop what had landed.

A batch without dead letters needs no dead-letter commit, so the cursor is
committed only with dead letters, at most :data:`CURSOR_EVERY_S` after the last
one, and on :meth:`flush`: one commit fewer per batch, and a repair decodes
again at most that many seconds of records.

What the decoder's expectations found in each batch goes to the ``quality``
table (:class:`lake.QualityLog`) right after the decode cursor, at the same
cadence: a crash may lose those few seconds of results, never count them twice.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingest.decoder import BRONZE_COLUMNS, Decoder
from lake import (
    DEAD_LETTER_SCHEMA,
    BronzeTable,
    DeadLetters,
    Lake,
    QualityLog,
    QualityResult,
    SilverTable,
)
from lake.names import DEAD_LETTERS, KAFKA_OFFSET, KAFKA_PARTITION, QUALITY, silver

__all__ = ["CURSOR_EVERY_S", "DecodeSummary", "SilverWriter"]

log = logging.getLogger(__name__)
CURSOR_EVERY_S = 5.0  # longest a decode cursor lags behind silver


@dataclass
class DecodeSummary:
    """Rows written per silver subject, dead letters per error kind, and what the
    expectations found."""

    silver: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    dead: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    quality: list[QualityResult] = field(default_factory=list)

    def add(self, other: DecodeSummary) -> None:
        for k, v in other.silver.items():
            self.silver[k] += v
        for k, v in other.dead.items():
            self.dead[k] += v
        self.quality += other.quality

    def __str__(self) -> str:
        parts = [f"{silver(s)} +{n}" for s, n in sorted(self.silver.items())]
        parts += [f"dead letters +{n} {k}" for k, n in sorted(self.dead.items())]
        parts += [f"{q.expectation} failed {q.failed}" for q in self.quality if q.failed]
        return ", ".join(parts) or "nothing to decode"


class SilverWriter:
    """Decodes bronze rows of one topic (``decoder.topic``) into silver tables and
    dead letters of ``lake``. ``dead_letters`` is created by the first commit that
    needs it."""

    def __init__(self, lake: Lake, decoder: Decoder) -> None:
        self.lake = lake
        self.decoder = decoder
        self.topic = decoder.topic
        self._dead_letters: DeadLetters | None = None
        self._silver: dict[str, SilverTable] = {}
        self._pending: dict[int, int] = {}  # decode cursor not committed yet
        self._cursor_at = time.monotonic()
        self._quality: list[QualityResult] = []  # committed with the cursor
        self._quality_log: QualityLog | None = None

    @property
    def dead_letters(self) -> DeadLetters:
        """The ``dead_letters`` table (opened, and created, on first use)."""
        if self._dead_letters is None:
            self._dead_letters = DeadLetters.open(self.lake)
        return self._dead_letters

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
        decoded = self.decoder.decode(bronze_rows)
        for subject, data in decoded.silver.items():
            summary.silver[subject] += self.table(subject).append(self.topic, data).rows
        for k in decoded.dead.column("error_kind").to_pylist():
            summary.dead[k] += 1
        summary.quality = decoded.quality
        self._quality += decoded.quality
        if decoded.dead.num_rows or time.monotonic() - self._cursor_at >= CURSOR_EVERY_S:
            self._quarantine(decoded.dead)
        return summary

    def flush(self) -> None:
        """Commit the decode cursor if it lags behind what was written."""
        if self._pending:
            self._quarantine(DEAD_LETTER_SCHEMA.empty_table())

    def _quarantine(self, dead: pa.Table) -> None:
        self.dead_letters.append(self.topic, dead, self._pending)
        self._pending = {}
        self._cursor_at = time.monotonic()
        if self._quality:
            if self._quality_log is None:
                self._quality_log = QualityLog.open(self.lake)
            self._quality_log.append(self._quality)
            self._quality = []

    def table_names(self) -> list[str]:
        """The tables written so far by this writer (silver, dead letters and quality
        if opened)."""
        names = [t.name for t in self._silver.values()]
        names += [DEAD_LETTERS] if self._dead_letters is not None else []
        return names + ([QUALITY] if self._quality_log is not None else [])

    def table(self, subject: str) -> SilverTable:
        """The silver table of ``subject``."""
        table = self._silver.get(subject)
        if table is None:
            table = self._silver[subject] = SilverTable(self.lake, subject)
        return table

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
        self.decoder.forget_schemas()
        dead = self.dead_letters.read(self.topic)
        summary = DecodeSummary()
        if dead.num_rows == 0:
            return summary
        decoded = self.decoder.decode(dead.select(BRONZE_COLUMNS))
        for subject, data in decoded.silver.items():
            self.table(subject).append_missing(data)
            summary.silver[subject] += data.num_rows
            for p in np.unique(data.column(KAFKA_PARTITION).to_numpy()):
                offs = data.filter(pc.equal(data.column(KAFKA_PARTITION), int(p)))
                self.dead_letters.remove(self.topic, int(p), offs.column(KAFKA_OFFSET).to_pylist())
        for k in decoded.dead.column("error_kind").to_pylist():
            summary.dead[k] += 1
        log.info("%s: reprocessed %d dead letters: %s", self.topic, dead.num_rows, summary)
        return summary
