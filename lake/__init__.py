"""The Delta tables of the lake: names, the lake handle, bronze, silver, dead letters,
data-quality results, the schema registry's storage, coverage, maintenance, erasure.

Imports nothing else of eventlake. The vocabulary (table names, subjects,
lineage columns) is :mod:`lake.names`.
"""

from lake.bronze import BRONZE_SCHEMA, AppendResult, BronzeTable, bronze_rows
from lake.catalog import Lake, TableInfo, TableNotInLake
from lake.coverage import PartitionCoverage, PartitionOffsets, decode_coverage, offset_continuity
from lake.dead_letters import DEAD_LETTER_SCHEMA, DeadLetters, decode_cursor
from lake.erasure import (
    ErasedRecords,
    ErasureError,
    ErasureReport,
    delete_records,
    erase,
    erased_records,
)
from lake.errors import (
    DeleteRefused,
    IncompatibleSchema,
    InvalidSchema,
    InvalidSubject,
    InvalidTableName,
    LakeError,
    LakeNotWritable,
    OffsetConflict,
    SchemaNotFound,
    SchemaRegistryError,
    SourceChanged,
    SubjectNotFound,
    UnsafeCommits,
    VersionNotFound,
)
from lake.maintenance import DEFAULT_RETENTION_HOURS, MaintenanceReport, maintain, maintain_lake
from lake.names import validate_name
from lake.offsets import committed_offsets, source_app_id, txn_app_id
from lake.quality import QUALITY_SCHEMA, QualityLog, QualityResult, read_quality
from lake.schema_store import RegisteredSchema, SchemaStore
from lake.schemas import (
    COMPATIBILITY_LEVELS,
    DEFAULT_COMPATIBILITY,
    ParsedSchema,
    Reference,
    compatibility_problems,
    parse_schema,
)
from lake.silver import SILVER_LINEAGE, SilverTable, silver_topics, silver_window, subject_topics
from lake.storage import ensure_safe_commits, ensure_writable, is_local

__all__ = [
    "BRONZE_SCHEMA",
    "COMPATIBILITY_LEVELS",
    "DEAD_LETTER_SCHEMA",
    "DEFAULT_COMPATIBILITY",
    "DEFAULT_RETENTION_HOURS",
    "QUALITY_SCHEMA",
    "SILVER_LINEAGE",
    "AppendResult",
    "BronzeTable",
    "DeadLetters",
    "DeleteRefused",
    "ErasedRecords",
    "ErasureError",
    "ErasureReport",
    "IncompatibleSchema",
    "InvalidSchema",
    "InvalidSubject",
    "InvalidTableName",
    "Lake",
    "LakeError",
    "LakeNotWritable",
    "MaintenanceReport",
    "OffsetConflict",
    "ParsedSchema",
    "PartitionCoverage",
    "PartitionOffsets",
    "QualityLog",
    "QualityResult",
    "Reference",
    "RegisteredSchema",
    "SchemaNotFound",
    "SchemaRegistryError",
    "SchemaStore",
    "SilverTable",
    "SourceChanged",
    "SubjectNotFound",
    "TableInfo",
    "TableNotInLake",
    "UnsafeCommits",
    "VersionNotFound",
    "bronze_rows",
    "committed_offsets",
    "compatibility_problems",
    "decode_coverage",
    "decode_cursor",
    "delete_records",
    "ensure_safe_commits",
    "ensure_writable",
    "erase",
    "erased_records",
    "is_local",
    "maintain",
    "maintain_lake",
    "offset_continuity",
    "parse_schema",
    "read_quality",
    "silver_topics",
    "silver_window",
    "source_app_id",
    "subject_topics",
    "txn_app_id",
    "validate_name",
]
