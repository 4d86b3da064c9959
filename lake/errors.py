"""Errors raised by the lake layer.

LakeError
├── LakeNotWritable      the lake root cannot be written
├── UnsafeCommits        the object store lets one writer overwrite another's commit
├── InvalidTableName     a topic or subject name that cannot become a table path
├── OffsetConflict       a commit lost a race for the same Kafka offsets
├── SourceChanged        the topic was recreated since the table was ingested
└── SchemaRegistryError  the schema registry refused a request
    ├── SchemaNotFound       no schema with that id, subject or version
    ├── InvalidSchema        not a valid Avro schema
    └── IncompatibleSchema   breaks the subject's compatibility rule
"""

from __future__ import annotations

__all__ = [
    "IncompatibleSchema",
    "InvalidSchema",
    "InvalidTableName",
    "LakeError",
    "LakeNotWritable",
    "OffsetConflict",
    "SchemaNotFound",
    "SchemaRegistryError",
    "SourceChanged",
    "UnsafeCommits",
]


class LakeError(Exception):
    """Root of every error raised by :mod:`lake`."""


class LakeNotWritable(LakeError):
    """Raised when the lake root cannot be created or written."""

    def __init__(self, root: str, reason: str) -> None:
        self.root = root
        self.reason = reason
        super().__init__(
            f"the lake root {root!r} is not writable ({reason}); "
            "point EVENTLAKE_LAKE_ROOT at a folder you can write, or fix its permissions"
        )


class UnsafeCommits(LakeError):
    """Raised when a Delta commit on the lake's object store can overwrite another
    writer's (the store ignores conditional puts and no locking provider is set)."""

    def __init__(self, root: str, detail: str) -> None:
        self.root = root
        super().__init__(
            f"the object store of {root!r} let a second writer overwrite a Delta commit "
            f"({detail}): two ingesters or an ingester and compaction would lose data. Use "
            "a store with conditional writes (AWS S3, MinIO, GCS, Azure), or set "
            "AWS_S3_LOCKING_PROVIDER=dynamodb and DELTA_DYNAMO_TABLE_NAME in the storage "
            "options"
        )


class InvalidTableName(LakeError, ValueError):
    """Raised when a topic or subject name cannot safely become a table path."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason
        super().__init__(
            f"{name!r} cannot be used as a table name: {reason}. "
            "Use 1-249 characters from a-z, A-Z, 0-9, '.', '_' and '-', not '.' or '..'"
        )


class OffsetConflict(LakeError):
    """Raised when a bronze commit kept losing races with another writer."""

    def __init__(self, table_uri: str, attempts: int) -> None:
        self.table_uri = table_uri
        self.attempts = attempts
        super().__init__(
            f"gave up committing to {table_uri} after {attempts} concurrent-transaction "
            "conflicts; another ingester keeps writing the same partitions. Check that "
            "all ingesters of this topic use the same consumer group"
        )


class SourceChanged(LakeError):
    """Raised when a bronze table holds offsets of an earlier incarnation of its topic."""

    def __init__(self, table_uri: str, topic: str, source_id: str) -> None:
        self.table_uri = table_uri
        self.topic = topic
        self.source_id = source_id
        super().__init__(
            f"{table_uri} holds offsets of an earlier incarnation of topic {topic!r}; the "
            f"topic now has id {source_id}, which was never ingested. It was deleted and "
            "recreated (a restart of the memory-only embedded broker does that), and "
            "ingesting it would mix two offset sequences. Replay the lake into it "
            "(`eventlake replay kafka`) or ingest the new topic under another name"
        )


class SchemaRegistryError(LakeError):
    """Root of the schema registry's refusals."""


class SchemaNotFound(SchemaRegistryError, KeyError):
    """Raised when no schema matches an id, a subject, or a subject's version."""

    def __init__(self, what: str) -> None:
        self.what = what
        super().__init__(what)

    def __str__(self) -> str:
        return f"{self.what} not found"


class SubjectNotFound(SchemaNotFound):
    """Raised when a subject has no versions (live ones, unless deleted ones were asked for)."""

    def __init__(self, subject: str) -> None:
        self.subject = subject
        super().__init__(f"subject {subject!r}")


class VersionNotFound(SchemaNotFound):
    """Raised when a subject exists but not the version asked for."""

    def __init__(self, subject: str, version: int | str) -> None:
        self.subject, self.version = subject, version
        super().__init__(f"version {version} of subject {subject!r}")


class InvalidSubject(SchemaRegistryError, ValueError):
    """Raised for a subject the registry cannot store (control characters)."""

    def __init__(self, subject: str) -> None:
        self.subject = subject
        super().__init__(
            f"subject {subject!r} cannot be registered: it contains control characters; "
            "use printable characters only"
        )


class DeleteRefused(SchemaRegistryError):
    """Raised when a delete breaks Confluent's two-step rule or a reference.

    ``reason`` is ``soft_deleted`` (already soft-deleted; delete permanently),
    ``not_soft_deleted`` (soft-delete first) or ``referenced`` (other schemas
    reference it: delete those first).
    """

    def __init__(
        self, reason: str, subject: str, version: int | None, referrers: tuple[int, ...] = ()
    ) -> None:
        self.reason, self.subject, self.version = reason, subject, version
        self.referrers = list(referrers)
        what = f"subject {subject!r}" + (f" version {version}" if version is not None else "")
        todo = {
            "soft_deleted": "is already soft-deleted; delete it with permanent=true to remove it",
            "not_soft_deleted": "is not soft-deleted; soft-delete it first, then delete it "
            "with permanent=true",
            "referenced": f"is referenced by schema ids {self.referrers}; delete those first",
        }[reason]
        super().__init__(f"{what} {todo}")


class InvalidSchema(SchemaRegistryError, ValueError):
    """Raised when a schema is not valid Avro; says what the parser objected to."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"invalid Avro schema: {reason}")


class IncompatibleSchema(SchemaRegistryError):
    """Raised when a schema breaks the subject's compatibility rule.

    ``problems`` lists each incompatibility with the field path and the rule.
    """

    def __init__(self, subject: str, level: str, problems: list[str]) -> None:
        self.subject = subject
        self.level = level
        self.problems = problems
        super().__init__(
            f"schema for subject {subject!r} is incompatible under {level}: "
            + "; ".join(problems)
            + ". Give new fields a default, keep removed fields' defaults, or change the "
            "subject's compatibility level if the break is intended"
        )
