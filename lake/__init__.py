"""The Delta tables of the lake: layout, offsets, bronze appends, the schema registry.

Imports nothing else of eventlake.
"""

from lake.bronze import BRONZE_SCHEMA, AppendResult, BronzeTable, bronze_rows
from lake.errors import (
    IncompatibleSchema,
    InvalidSchema,
    InvalidTableName,
    LakeError,
    LakeNotWritable,
    OffsetConflict,
    RegistryError,
    SchemaNotFound,
    SourceChanged,
)
from lake.names import table_uri, validate_name
from lake.offsets import committed_offsets, source_app_id, txn_app_id
from lake.registry import RegisteredSchema, SchemaRegistry
from lake.schemas import COMPATIBILITY_LEVELS, ParsedSchema, compatibility_problems, parse_schema
from lake.storage import ensure_writable, is_local

__all__ = [
    "BRONZE_SCHEMA",
    "COMPATIBILITY_LEVELS",
    "AppendResult",
    "BronzeTable",
    "IncompatibleSchema",
    "InvalidSchema",
    "InvalidTableName",
    "LakeError",
    "LakeNotWritable",
    "OffsetConflict",
    "ParsedSchema",
    "RegisteredSchema",
    "RegistryError",
    "SchemaNotFound",
    "SchemaRegistry",
    "SourceChanged",
    "bronze_rows",
    "committed_offsets",
    "compatibility_problems",
    "ensure_writable",
    "is_local",
    "parse_schema",
    "source_app_id",
    "table_uri",
    "txn_app_id",
    "validate_name",
]
