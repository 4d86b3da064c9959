"""The schema registry's storage: subjects, versions and ids of Avro schemas, in the lake.

Confluent Schema Registry semantics; its REST API is served over this store by
:mod:`ingest.schema_registry_api`.

Two Delta tables under ``registry/``:

- ``schemas``: one row per (subject, version): global ``id``, ``subject``,
  ``version``, ``schema`` (the text as registered), ``fingerprint`` (of its
  normal form and references: the schema's identity), ``references`` (JSON
  list of ``{name, subject, version}``), ``schema_type``, ``registered_at``,
  ``deleted`` (soft delete), ``source`` (``eventlake`` or the URL of the
  external registry the schema was copied from).
- ``config``: compatibility levels, global (``subject`` null) and per subject;
  the newest row for a subject wins.

An id belongs to a schema, not to a subject: the same schema under two subjects
has one id, and ids are never reused, even after a permanent delete. Registering
the same schema again under a subject returns its existing version. A schema
may reference named types defined by other subjects' versions; those versions
cannot be deleted while referenced. Writers serialize through a Delta ``txn``
action (``eventlake-registry``, version = highest id): two concurrent
registrations conflict in delta-rs and the loser re-reads and retries.

A permanent delete (after a soft delete, as Confluent requires) removes a
version from everything the API answers; its row stays, marked ``purged``, so
the id is never given to another schema (the same schema registered again gets
it back, as in Confluent) and records in the lake written with it still decode
on replay.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Sequence
from typing import Literal

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, Field, Transaction, write_deltalake
from deltalake.exceptions import CommitFailedError

from lake.catalog import Lake
from lake.errors import (
    DeleteRefused,
    IncompatibleSchema,
    InvalidSchema,
    SchemaNotFound,
    SchemaRegistryError,
    SubjectNotFound,
    VersionNotFound,
)
from lake.names import UTC_MICROS, registry_table
from lake.schema_versions import (
    RegisteredSchema,
    named_texts,
    pin_references,
    validate_subject,
    versions_of,
)
from lake.schemas import (
    COMPATIBILITY_LEVELS,
    DEFAULT_COMPATIBILITY,
    ParsedSchema,
    Reference,
    compatibility_problems,
    fingerprint,
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
        pa.field("references", pa.string()),
        pa.field("purged", pa.bool_()),
    ]
)
CONFIG_SCHEMA = pa.schema(
    [
        pa.field("subject", pa.string()),
        pa.field("compatibility", pa.string(), nullable=False),
        pa.field("updated_at", UTC_MICROS, nullable=False),
    ]
)
Version = int | Literal["latest"]


def _quoted(text: str) -> str:
    """A SQL string literal for a Delta predicate."""
    return "'" + text.replace("'", "''") + "'"


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
        self._top_id = 0
        self._levels: dict[str | None, str] = {}
        self._seen: tuple[int, int] = (-1, -1)
        self._parsed: dict[str, ParsedSchema] = {}

    @classmethod
    def open(cls, lake: Lake) -> SchemaStore:
        """Open (creating if needed) the schema registry's tables in ``lake``."""
        schemas = lake.open_or_create(registry_table("schemas"), SCHEMAS_SCHEMA)
        have = {f.name for f in schemas.schema().fields}
        missing = [f for f in SCHEMAS_SCHEMA if f.name not in have]
        if missing:  # a registry from before references and permanent deletes
            schemas.alter.add_columns([Field.from_arrow(f) for f in missing])
        config = lake.open_or_create(registry_table("config"), CONFIG_SCHEMA)
        return cls(schemas, config, lake)

    # -- reading ---------------------------------------------------------------

    def _refresh(self) -> list[RegisteredSchema]:
        self._schemas.update_incremental()
        self._config.update_incremental()
        seen = (self._schemas.version(), self._config.version())
        if seen != self._seen:
            table = self._schemas.to_pyarrow_table()
            rows = table.sort_by(
                [("id", "ascending"), ("subject", "ascending"), ("version", "ascending")]
            ).to_pylist()
            self._rows = [
                RegisteredSchema(
                    r["id"],
                    r["subject"],
                    r["version"],
                    r["schema"],
                    r["deleted"],
                    tuple(Reference(**x) for x in json.loads(r.get("references") or "[]")),
                    r["fingerprint"],
                    bool(r.get("purged")),
                )
                for r in rows
            ]
            top = self._schemas.transaction_version(_TXN_APP) or 0
            self._top_id = max([top] + [r.id for r in self._rows])
            levels: dict[str | None, str] = {}
            for r in self._config.to_pyarrow_table().sort_by("updated_at").to_pylist():
                levels[r["subject"]] = r["compatibility"]
            self._levels = levels
            self._seen = seen
        return self._rows

    def _snapshot(self, *, purged: bool = False) -> list[RegisteredSchema]:
        """The rows the API sees (and the permanently deleted ones too with ``purged``)."""
        with self._lock:
            return [r for r in self._refresh() if purged or not r.purged]

    def subjects(
        self, *, include_deleted: bool = False, deleted_only: bool = False, prefix: str = ""
    ) -> list[str]:
        """Subjects with a live version (any version with ``include_deleted``; only
        soft-deleted subjects with ``deleted_only``), optionally starting with ``prefix``."""
        rows = self._snapshot()
        live = {r.subject for r in rows if not r.deleted}
        every = {r.subject for r in rows}
        chosen = every - live if deleted_only else every if include_deleted else live
        return sorted(s for s in chosen if s.startswith(prefix))

    def listing(self, *, include_deleted: bool = False) -> list[RegisteredSchema]:
        """Every version of every subject (soft-deleted ones too with ``include_deleted``),
        by subject then version, from one read of the registry."""
        rows = (r for r in self._snapshot() if include_deleted or not r.deleted)
        return sorted(rows, key=lambda r: (r.subject, r.version))

    def versions(
        self, subject: str, *, include_deleted: bool = False, deleted_only: bool = False
    ) -> list[int]:
        """Version numbers of ``subject``; raises :class:`SubjectNotFound` if it has none
        (none live, unless deleted ones are asked for)."""
        rows = versions_of(self._snapshot(), subject, deleted=include_deleted or deleted_only)
        if not rows:
            raise SubjectNotFound(subject)
        return [r.version for r in rows if r.deleted or not deleted_only]

    def get(
        self, subject: str, version: Version = "latest", *, include_deleted: bool = False
    ) -> RegisteredSchema:
        """One version of ``subject`` (``"latest"`` = its highest version, live unless
        ``include_deleted``)."""
        rows = versions_of(self._snapshot(), subject, deleted=include_deleted)
        if not rows:
            raise SubjectNotFound(subject)
        if version == "latest":
            return rows[-1]
        for r in rows:
            if r.version == version:
                return r
        raise VersionNotFound(subject, version)

    def history(self, subject: str) -> list[str]:
        """Every schema of ``subject`` in normal form, references inlined, oldest version
        first, soft-deleted ones included (old records still decode with them); raises
        :class:`SubjectNotFound` if none."""
        rows = self._snapshot(purged=True)
        mine = sorted(
            (r for r in rows if r.subject == subject), key=lambda r: (r.version, not r.purged)
        )
        if not mine:
            raise SubjectNotFound(subject)
        return list(dict.fromkeys(self._parse(r, rows).text for r in mine))

    def by_id(self, schema_id: int) -> str:
        """The schema text with global id ``schema_id``, as registered."""
        return self.schema(schema_id).schema

    def schema(self, schema_id: int) -> RegisteredSchema:
        """The first (subject, version) holding id ``schema_id`` (deleted ones included)."""
        for r in self._snapshot():
            if r.id == schema_id:
                return r
        raise SchemaNotFound(f"schema id {schema_id}")

    def resolved(self, schema_id: int) -> str:
        """The schema with id ``schema_id`` standing alone (references inlined): what a
        decoder needs. Permanently deleted schemas still resolve: records in the lake
        written with them still decode."""
        rows = self._snapshot(purged=True)
        for r in rows:
            if r.id == schema_id:
                return self._parse(r, rows).text
        raise SchemaNotFound(f"schema id {schema_id}")

    def subjects_of(
        self, schema_id: int, *, include_deleted: bool = False
    ) -> list[tuple[str, int]]:
        """``(subject, version)`` pairs that use schema ``schema_id``."""
        return [
            (r.subject, r.version)
            for r in self._snapshot()
            if r.id == schema_id and (include_deleted or not r.deleted)
        ]

    def referenced_by(self, subject: str, version: int) -> list[int]:
        """Ids of the schemas (live or soft-deleted) that reference ``subject``'s ``version``."""
        return sorted(
            {
                r.id
                for r in self._snapshot()
                if any(x.subject == subject and x.version == version for x in r.references)
            }
        )

    def lookup(
        self,
        subject: str,
        schema: str,
        references: Sequence[Reference] = (),
        *,
        include_deleted: bool = False,
    ) -> RegisteredSchema:
        """The version of ``subject`` whose schema and references equal these (live only,
        unless ``include_deleted``); raises :class:`SubjectNotFound` or :class:`SchemaNotFound`."""
        rows = self._snapshot()
        mine = versions_of(rows, subject, deleted=include_deleted)
        if not mine:
            raise SubjectNotFound(subject)
        refs = pin_references(rows, references)
        key = fingerprint(parse_schema(schema, named_texts(rows, refs)), refs)
        for r in mine:
            if r.fingerprint == key:
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

    # -- references and parsing ------------------------------------------------

    def _parse(self, r: RegisteredSchema, rows: list[RegisteredSchema]) -> ParsedSchema:
        key = f"{r.subject}\0{r.version}\0{r.fingerprint}\0{r.purged}"
        parsed = self._parsed.get(key)
        if parsed is None:
            parsed = self._parsed[key] = parse_schema(r.schema, named_texts(rows, r.references))
        return parsed

    def problems(self, subject: str, schema: str, version: Version | None = None) -> list[str]:
        """Why ``schema`` would break ``subject``'s level ([] if it would not).

        With ``version``, only that version is checked (the REST API's
        ``/compatibility/subjects/S/versions/V``); otherwise the subject's rule
        decides which versions count.
        """
        return self.check(subject, schema, (), version)

    def check(
        self,
        subject: str,
        schema: str,
        references: Sequence[Reference] = (),
        version: Version | None = None,
    ) -> list[str]:
        """:meth:`problems` for a schema with ``references``."""
        rows = self._snapshot()
        refs = pin_references(rows, references)
        return self._check(rows, subject, parse_schema(schema, named_texts(rows, refs)), version)

    def _check(
        self,
        rows: list[RegisteredSchema],
        subject: str,
        new: ParsedSchema,
        version: Version | None = None,
    ) -> list[str]:
        """Compatibility problems against ``rows``, one snapshot: a registration must
        not re-read the table between its check and its commit."""
        with self._lock:
            level = self._level(subject) or DEFAULT_COMPATIBILITY
        live = versions_of(rows, subject)
        if version is not None:
            if not live:
                raise SubjectNotFound(subject)
            chosen = live[-1:] if version == "latest" else [r for r in live if r.version == version]
            if not chosen:
                raise VersionNotFound(subject, version)
            live, level = chosen, level.replace("_TRANSITIVE", "")
        return compatibility_problems(new, [self._parse(r, rows) for r in live], level)

    def history_problems(self, subject: str) -> list[str]:
        """Each live version of ``subject`` checked against the ones before it under the
        subject's level: what a registration would have refused ([] when all hold)."""
        rows = self._snapshot()
        level = self.compatibility(subject) or DEFAULT_COMPATIBILITY
        live = versions_of(rows, subject)
        parsed = [self._parse(r, rows) for r in live]
        out: list[str] = []
        for i in range(1, len(parsed)):
            out += [
                f"v{live[i].version}: {p}"
                for p in compatibility_problems(parsed[i], parsed[:i], level)
            ]
        return out

    # -- writing ---------------------------------------------------------------

    def register(
        self,
        subject: str,
        schema: str,
        references: Sequence[Reference] = (),
        *,
        schema_type: str = "AVRO",
    ) -> RegisteredSchema:
        """Register ``schema`` (which may reference other subjects' versions) under
        ``subject``; idempotent for an identical schema and references.

        Raises :class:`InvalidSubject`, :class:`InvalidSchema` or
        :class:`IncompatibleSchema` (which names each offending field and rule);
        nothing is written then. The check, the id and the commit all come from
        one snapshot of the table; a concurrent registration makes the commit fail
        and the whole step run again.
        """
        validate_subject(subject)
        if schema_type.upper() != "AVRO":
            raise InvalidSchema(f"schema type {schema_type!r} is not supported; use AVRO")
        for _ in range(50):
            with self._lock:
                every = list(self._refresh())
                rows = [r for r in every if not r.purged]
                top = self._top_id
            refs = pin_references(rows, references)
            parsed = parse_schema(schema, named_texts(rows, refs))
            key = fingerprint(parsed, refs)
            mine = versions_of(rows, subject, deleted=True)
            for r in mine:
                if r.fingerprint == key and not r.deleted:
                    return r
            problems = self._check(rows, subject, parsed)
            if problems:
                raise IncompatibleSchema(subject, self._level(subject) or "", problems)
            same = [r.id for r in every if r.fingerprint == key]  # Confluent keeps the id
            new_id = same[0] if same else top + 1
            version = max((r.version for r in mine), default=0) + 1
            row = RegisteredSchema(new_id, subject, version, schema, False, refs, key)
            if self._append(row, max(top, new_id)):
                # Confluent drops older soft-deleted versions of the same schema.
                stale = [r.version for r in mine if r.deleted and r.id == new_id]
                if stale and not any(self.referenced_by(subject, v) for v in stale):
                    self._purge(subject, stale)
                return row
        raise SchemaRegistryError(
            f"gave up registering under {subject!r}: other writers kept "
            "registering at the same time; try again"
        )

    def copy(
        self,
        schema_id: int,
        subject: str,
        version: int,
        schema: str,
        source: str,
        references: Sequence[Reference] = (),
    ) -> None:
        """Keep a copy of a schema from an external registry under its own id (its
        references must be copied first)."""
        rows = self._snapshot()
        if any(r.id == schema_id and r.subject == subject for r in rows):
            return
        refs = tuple(references)
        parsed = parse_schema(schema, named_texts(rows, refs))
        row = RegisteredSchema(
            schema_id, subject, version, schema, False, refs, fingerprint(parsed, refs)
        )
        self._append(row, max([self._top_id, schema_id]), source=source)

    def _append(self, row: RegisteredSchema, top: int, *, source: str = "eventlake") -> bool:
        table = pa.Table.from_pylist(
            [
                {
                    "id": row.id,
                    "subject": row.subject,
                    "version": row.version,
                    "schema": row.schema,
                    "fingerprint": row.fingerprint,
                    "schema_type": "AVRO",
                    "registered_at": dt.datetime.now(dt.UTC),
                    "deleted": False,
                    "source": source,
                    "references": json.dumps([r.to_json() for r in row.references])
                    if row.references
                    else None,
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
            validate_subject(subject)
        table = pa.Table.from_pylist(
            [{"subject": subject, "compatibility": level, "updated_at": dt.datetime.now(dt.UTC)}],
            schema=CONFIG_SCHEMA,
        )
        write_deltalake(self._config, table, mode="append", storage_options=self._storage_options)
        return level

    def delete_compatibility(self, subject: str | None = None) -> str | None:
        """Remove ``subject``'s own level (or reset the global one to the default);
        return the level it had (None if it had none of its own)."""
        old = self.compatibility(subject, fallback=subject is None)
        predicate = "subject IS NULL" if subject is None else f"subject = {_quoted(subject)}"
        self._config.delete(predicate)
        return old

    def delete(
        self, subject: str, version: Version | None = None, *, permanent: bool = False
    ) -> list[int]:
        """Delete ``subject`` (every version) or one version; return the versions deleted.

        Confluent's rules: a soft delete hides live versions (ids stay resolvable);
        ``permanent`` removes versions that were soft-deleted first; a version
        other schemas reference is not deleted. Raises :class:`SubjectNotFound`,
        :class:`VersionNotFound` or :class:`DeleteRefused` saying which rule.
        """
        rows = self._snapshot()
        every = versions_of(rows, subject, deleted=True)
        if not every:
            raise SubjectNotFound(subject)
        if version is None:
            targets = every if permanent else [r for r in every if not r.deleted]
            if not targets:
                raise DeleteRefused("soft_deleted", subject, None)
            if permanent and any(not r.deleted for r in targets):
                raise DeleteRefused("not_soft_deleted", subject, None)
        else:
            pool = every if permanent else versions_of(rows, subject)
            chosen = (
                pool[-1:] if version == "latest" else [r for r in every if r.version == version]
            )
            if not chosen:
                raise VersionNotFound(subject, version)
            if chosen[0].deleted and not permanent:
                raise DeleteRefused("soft_deleted", subject, chosen[0].version)
            if permanent and not chosen[0].deleted:
                raise DeleteRefused("not_soft_deleted", subject, chosen[0].version)
            targets = chosen
        for r in targets:
            users = [  # a soft delete minds live referrers; a permanent one every referrer
                x.id
                for x in rows
                if (x.subject != subject or version is not None) and (permanent or not x.deleted)
                if any(ref.subject == subject and ref.version == r.version for ref in x.references)
            ]
            if users:
                raise DeleteRefused("referenced", subject, r.version, tuple(sorted(set(users))))
        if permanent:
            self._purge(subject, [r.version for r in targets])
            if version is None or len(every) == len(targets):
                self._config.delete(f"subject = {_quoted(subject)}")
        else:
            self._schemas.update(
                updates={"deleted": "true"}, predicate=self._where(subject, targets)
            )
        return [r.version for r in targets]

    @staticmethod
    def _where(subject: str, rows: Sequence[RegisteredSchema | int]) -> str:
        versions = ", ".join(str(r if isinstance(r, int) else r.version) for r in rows)
        return f"subject = {_quoted(subject)} AND version IN ({versions}) AND purged IS NOT TRUE"

    def _purge(self, subject: str, versions: list[int]) -> None:
        """Permanently delete: the versions leave the API; their rows stay, marked, so
        ids are never handed to another schema and old records still decode."""
        self._schemas.update(updates={"purged": "true"}, predicate=self._where(subject, versions))
