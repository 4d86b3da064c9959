"""The Delta tables of the lake: layout, offsets, bronze appends.

Imports nothing else of eventlake.
"""

from lake.bronze import BRONZE_SCHEMA, AppendResult, BronzeTable, bronze_rows
from lake.errors import (
    InvalidTableName,
    LakeError,
    LakeNotWritable,
    OffsetConflict,
    SourceChanged,
)
from lake.names import table_uri, validate_name
from lake.offsets import committed_offsets, source_app_id, txn_app_id
from lake.storage import ensure_writable, is_local

__all__ = [
    "BRONZE_SCHEMA",
    "AppendResult",
    "BronzeTable",
    "InvalidTableName",
    "LakeError",
    "LakeNotWritable",
    "OffsetConflict",
    "SourceChanged",
    "bronze_rows",
    "committed_offsets",
    "ensure_writable",
    "is_local",
    "source_app_id",
    "table_uri",
    "txn_app_id",
    "validate_name",
]
