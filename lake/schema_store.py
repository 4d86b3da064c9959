"""The schema registry's storage: subjects, versions and ids of Avro schemas, in the lake.

Confluent Schema Registry semantics; its REST API is served over this store by
:mod:`ingest.schema_registry_api`.

Two Delta tables under ``registry/``:

- ``schemas``: one row per (subject, version): global ``id``, ``subject``,
  ``version``, ``schema`` (normal form), ``fingerprint``, ``schema_type``,
  ``registered_at``, ``deleted`` (soft delete), ``source`` (``eventlake`` or the
  URL of the external registry the schema was copied from).
- ``config``: compatibility levels, global (``subject`` null) and per subject;
  the newest row for a subject wins.

An id belongs to a schema, not to a subject: the same schema under two subjects
has one id. Registering the same schema again under a subject returns its
existing version. Writers serialize through a Delta ``txn`` action
(``eventlake-registry``, version = highest id): two concurrent registrations
conflict in delta-rs and the loser re-reads and retries.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass
from typing import Literal

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import CommitFailedError

from lake.catalog import Lake
from lake.errors import IncompatibleSchema, InvalidSchema, SchemaNotFound, SchemaRegistryError
from lake.names import UTC_MICROS, registry_table, validate_name
from lake.schemas import (
    COMPATIBILITY_LEVELS,
    DEFAULT_COMPATIBILITY,
    ParsedSchema,
    compatibility_problems,
    parse_schema,
)

__all__ = ["RegisteredSchema", "SchemaStore"]

_TXN_APP = "eventlake-registry"
SCHEMAS_SCHEMA = pa.schema(
    [
        pa.field("id", pa.int32(), nullable=False),
        pa.field("subject", pa.string(), nullable=False),
        pa.field("version", pa.int32(), nullable=False),
        pa.field("schema", pa.string(), nullable=False),
        pa.field("fingerprint", pa.string(), nullable=False),
        pa.field("schema_type", pa.string(), nullable=False),
        pa.field("registered_at", UTC_MICROS, nullable=False),
        pa.field("deleted", pa.bool_(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
    ]
)
CONFIG_SCHEMA = pa.schema(
    [
        pa.field("subject", pa.string()),
        pa.field("compatibility", pa.string(), nullable=False),
        pa.field("updated_at", UTC_MICROS, nullable=False),
    ]
)


@dataclass(frozen=True)
class RegisteredSchema:
    """One version of a subject."""

    id: int
    subject: str
    version: int
    schema: str
    deleted: bool = False


def _validate_subject(subject: str) -> str:
    # Subjects become silver table names: the Kafka character set applies.
    return validate_name(subject)


class SchemaStore:
    """Subjects, versions and global ids of Avro schemas, stored in the lake.

    >>> import tempfile
    >>> reg = SchemaStore.open(Lake(tempfile.mkdtemp()))
    >>> v1 = '{"type":"record","name":"O","fields":[{"name":"a","type":"int"}]}'
    >>> r = reg.register("orders-value", v1)
    >>> r.id, r.subject, r.version
    (1, 'orders-value', 1)
    >>> reg.register("orders-value", v1).version   # idempotent
    1
    """

    def __init__(self, schemas: DeltaTable, config: DeltaTable, lake: Lake) -> None:
        self._schemas = schemas
        self._config = config
        self.lake = lake
        self._storage_options = lake.storage_options
        self._lock = threading.Lock()
        self._rows: list[RegisteredSchema] = []
        self._levels: dict[str | None, str] = {}
        self._seen: tuple[int, int] = (-1, -1)

    @classmethod
    def open(cls, lake: Lake) -> SchemaStore:
        """Open (creating if needed) the schema registry's tables in ``lake``."""
        schemas = lake.open_or_create(registry_table("schemas"), SCHEMAS_SCHEMA)
        config = lake.open_or_create(registry_table("config"), CONFIG_SCHEMA)
        return cls(schemas, config, lake)

    # -- reading ---------------------------------------------------------------

    def _refresh(self) -> None:
        self._schemas.update_incremental()
        self._config.update_incremental()
        seen = (self._schemas.version(), self._config.version())
        if seen == self._seen:
            return
        rows = (
            self._schemas.to_pyarrow_table()
            .sort_by([("id", "ascending"), ("subject", "ascending"), ("version", "ascending")])
            .to_pylist()
        )
        self._rows = [
            RegisteredSchema(r["id"], r["subject"], r["version"], r["schema"], r["deleted"])
            for r in rows
        ]
        levels: dict[str | None, str] = {}
        for r in self._config.to_pyarrow_table().sort_by("updated_at").to_pylist():
            levels[r["subject"]] = r["compatibility"]
        self._levels = levels
        self._seen = seen

    def subjects(self, *, include_deleted: bool = False) -> list[str]:
        """Subjects with at least one (live, unless ``include_deleted``) version."""
        with self._lock:
            self._refresh()
            return sorted({r.subject for r in self._rows if include_deleted or not r.deleted})

    def versions(self, subject: str, *, include_deleted: bool = False) -> list[int]:
        """Version numbers of ``subject``; raises :class:`SchemaNotFound` if none."""
        with self._lock:
            self._refresh()
            out = sorted(
                r.version
                for r in self._rows
                if r.subject == subject and (include_deleted or not r.deleted)
            )
        if not out:
            raise SchemaNotFound(f"subject {subject!r}")
        return out

    def get(self, subject: str, version: int | Literal["latest"] = "latest") -> RegisteredSchema:
        """One version of ``subject`` (``"latest"`` = highest live version)."""
        with self._lock:
            self._refresh()
            live = [r for r in self._rows if r.subject == subject and not r.deleted]
        if not live:
            raise SchemaNotFound(f"subject {subject!r}")
        if version == "latest":
            return max(live, key=lambda r: r.version)
        for r in live:
            if r.version == version:
                return r
        raise SchemaNotFound(f"version {version} of subject {subject!r}")

    def history(self, subject: str) -> list[str]:
        """Every schema of ``subject``, oldest version first, soft-deleted ones included
        (old records still decode with them); raises :class:`SchemaNotFound` if none."""
        with self._lock:
            self._refresh()
            rows = sorted((r for r in self._rows if r.subject == subject), key=lambda r: r.version)
        if not rows:
            raise SchemaNotFound(f"subject {subject!r}")
        return [r.schema for r in rows]

    def by_id(self, schema_id: int) -> str:
        """The schema text with global id ``schema_id`` (deleted versions included)."""
        with self._lock:
            self._refresh()
            for r in self._rows:
                if r.id == schema_id:
                    return r.schema
        raise SchemaNotFound(f"schema id {schema_id}")

    def subjects_of(self, schema_id: int) -> list[tuple[str, int]]:
        """``(subject, version)`` pairs that use schema ``schema_id``."""
        with self._lock:
            self._refresh()
            return [
                (r.subject, r.version) for r in self._rows if r.id == schema_id and not r.deleted
            ]

    def lookup(self, subject: str, schema: str) -> RegisteredSchema:
        """The live version of ``subject`` whose schema equals ``schema``."""
        text = parse_schema(schema).text
        with self._lock:
            self._refresh()
            for r in self._rows:
                if r.subject == subject and r.schema == text and not r.deleted:
                    return r
        raise SchemaNotFound(f"schema under subject {subject!r}")

    def compatibility(self, subject: str | None = None, *, fallback: bool = True) -> str | None:
        """The compatibility level of ``subject`` (its own, else global) or the global one."""
        with self._lock:
            self._refresh()
            return self._level(subject, fallback=fallback)

    def _level(self, subject: str | None, *, fallback: bool = True) -> str | None:
        level = self._levels.get(subject)
        if level is None and fallback:
            level = self._levels.get(None, DEFAULT_COMPATIBILITY)
        return level

    def problems(
        self, subject: str, schema: str, version: int | Literal["latest"] | None = None
    ) -> list[str]:
        """Why ``schema`` would break ``subject``'s level ([] if it would not).

        With ``version``, only that version is checked (the REST API's
        ``/compatibility/subjects/S/versions/V``); otherwise the subject's rule
        decides which versions count.
        """
        new = parse_schema(schema)
        with self._lock:
            self._refresh()
            return self._problems(new, subject, list(self._rows), version)

    def _problems(
        self,
        new: ParsedSchema,
        subject: str,
        rows: list[RegisteredSchema],
        version: int | Literal["latest"] | None = None,
    ) -> list[str]:
        level = self._level(subject) or DEFAULT_COMPATIBILITY
        live = sorted(
            (r for r in rows if r.subject == subject and not r.deleted), key=lambda r: r.version
        )
        if version is not None:
            if not live:
                raise SchemaNotFound(f"subject {subject!r}")
            chosen = (
                live[-1]
                if version == "latest"
                else next((r for r in live if r.version == version), None)
            )
            if chosen is None:
                raise SchemaNotFound(f"version {version} of subject {subject!r}")
            live, level = [chosen], level.replace("_TRANSITIVE", "")
        return compatibility_problems(new, [parse_schema(r.schema) for r in live], level)

    def history_problems(self, subject: str) -> list[str]:
        """Each live version of ``subject`` checked against the ones before it under the
        subject's level: what a registration would have refused ([] when all hold)."""
        with self._lock:
            self._refresh()
            level = self._level(subject) or DEFAULT_COMPATIBILITY
            live = sorted(
                (r for r in self._rows if r.subject == subject and not r.deleted),
                key=lambda r: r.version,
            )
        parsed = [parse_schema(r.schema) for r in live]
        out: list[str] = []
        for i in range(1, len(parsed)):
            out += [
                f"v{live[i].version}: {p}"
                for p in compatibility_problems(parsed[i], parsed[:i], level)
            ]
        return out

    # -- writing ---------------------------------------------------------------

    def register(self, subject: str, schema: str, *, schema_type: str = "AVRO") -> RegisteredSchema:
        """Register ``schema`` under ``subject``; idempotent for an identical schema.

        Raises :class:`InvalidSchema` or :class:`IncompatibleSchema` (which names
        each offending field and rule); nothing is written then. The check, the
        id and the commit all come from one snapshot of the table; a concurrent
        registration makes the commit fail and the whole step run again.
        """
        _validate_subject(subject)
        if schema_type.upper() != "AVRO":
            raise InvalidSchema(f"schema type {schema_type!r} is not supported; use AVRO")
        parsed = parse_schema(schema)
        for _ in range(50):
            with self._lock:
                self._refresh()
                rows = list(self._rows)
                for r in rows:
                    if r.subject == subject and r.schema == parsed.text and not r.deleted:
                        return r
                problems = self._problems(parsed, subject, rows)
                if problems:
                    raise IncompatibleSchema(subject, self._level(subject) or "", problems)
                same = [r.id for r in rows if r.schema == parsed.text]
                new_id = same[0] if same else max((r.id for r in rows), default=0) + 1
                version = max((r.version for r in rows if r.subject == subject), default=0) + 1
                row = RegisteredSchema(new_id, subject, version, parsed.text)
                if self._append(row, parsed, rows):
                    return row
        raise SchemaRegistryError(
            f"gave up registering under {subject!r}: other writers kept "
            "registering at the same time; try again"
        )

    def copy(self, schema_id: int, subject: str, version: int, schema: str, source: str) -> None:
        """Keep a copy of a schema from an external registry under its own id."""
        parsed = parse_schema(schema)
        with self._lock:
            self._refresh()
            rows = list(self._rows)
        if any(r.id == schema_id and r.subject == subject for r in rows):
            return
        self._append(
            RegisteredSchema(schema_id, subject, version, parsed.text), parsed, rows, source=source
        )

    def _append(
        self,
        row: RegisteredSchema,
        parsed: ParsedSchema,
        rows: list[RegisteredSchema],
        *,
        source: str = "eventlake",
    ) -> bool:
        top = max([r.id for r in rows] + [row.id])
        table = pa.Table.from_pylist(
            [
                {
                    "id": row.id,
                    "subject": row.subject,
                    "version": row.version,
                    "schema": row.schema,
                    "fingerprint": parsed.fingerprint,
                    "schema_type": "AVRO",
                    "registered_at": dt.datetime.now(dt.UTC),
                    "deleted": False,
                    "source": source,
                }
            ],
            schema=SCHEMAS_SCHEMA,
        )
        try:
            write_deltalake(
                self._schemas,
                table,
                mode="append",
                storage_options=self._storage_options,
                commit_properties=CommitProperties(app_transactions=[Transaction(_TXN_APP, top)]),
            )
        except CommitFailedError as e:
            if "Concurrent transaction" in str(e):
                return False
            raise
        return True

    def set_compatibility(self, level: str, subject: str | None = None) -> str:
        """Set the compatibility level of ``subject``, or the global one."""
        level = level.upper()
        if level not in COMPATIBILITY_LEVELS:
            raise ValueError(
                f"unknown compatibility level {level!r}; valid: {', '.join(COMPATIBILITY_LEVELS)}"
            )
        if subject is not None:
            _validate_subject(subject)
        table = pa.Table.from_pylist(
            [{"subject": subject, "compatibility": level, "updated_at": dt.datetime.now(dt.UTC)}],
            schema=CONFIG_SCHEMA,
        )
        write_deltalake(self._config, table, mode="append", storage_options=self._storage_options)
        return level

    def delete(self, subject: str, version: int | None = None) -> list[int]:
        """Soft-delete ``subject`` (every version) or one version; return the versions."""
        targets = (
            self.versions(subject) if version is None else [self.get(subject, version).version]
        )
        predicate = f"subject = '{subject}'"
        if version is not None:
            predicate += f" AND version = {int(version)}"
        self._schemas.update(updates={"deleted": "true"}, predicate=predicate)
        return targets
