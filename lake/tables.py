"""Opening Delta tables of the lake, creating them on first use."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pyarrow as pa
from deltalake import DeltaTable
from deltalake.exceptions import CommitFailedError, TableNotFoundError

__all__ = ["open_or_create"]


def open_or_create(
    uri: str,
    schema: pa.Schema,
    *,
    partition_by: Sequence[str] | None = None,
    name: str | None = None,
    description: str | None = None,
    configuration: Mapping[str, str] | None = None,
    storage_options: Mapping[str, str] | None = None,
) -> DeltaTable:
    """Open the Delta table at ``uri``, creating it empty with ``schema`` if absent.

    Two processes creating it at once is fine: the loser opens the winner's.

    >>> import tempfile, pyarrow as pa
    >>> uri = tempfile.mkdtemp() + "/t"
    >>> open_or_create(uri, pa.schema([("x", pa.int64())])).version()
    0
    >>> open_or_create(uri, pa.schema([("x", pa.int64())])).version()
    0
    """
    so = dict(storage_options) if storage_options else None
    try:
        return DeltaTable(uri, storage_options=so)
    except TableNotFoundError:
        pass
    try:
        return DeltaTable.create(
            uri,
            schema,
            mode="ignore",
            partition_by=list(partition_by) if partition_by else None,
            name=name,
            description=description,
            configuration=dict(configuration) if configuration else None,
            storage_options=so,
        )
    except CommitFailedError:  # another process created it first
        return DeltaTable(uri, storage_options=so)
