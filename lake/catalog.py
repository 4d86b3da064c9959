"""The lake as a catalog: every Delta table by name, as Polars frames or SQL.

Tables are named by their path under the root, with ``/`` or ``.`` between
layer and name: ``bronze/orders`` and ``bronze.orders`` are the same table;
``dead_letters`` has no layer. Every read takes a Delta ``version`` (one table)
or an ``as_of`` timestamp (the newest version committed at or before it), so
any query can be repeated against the lake as it was.

SQL runs on Polars' SQL engine over lazy Delta scans: it is already a
dependency, reads the Delta log itself (no DuckDB extension to download) and
pushes filters and projections into the Parquet scan.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

import polars as pl
import pyarrow as pa
import pyarrow.fs as pafs
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from lake.errors import LakeError
from lake.names import LAYERS, from_segment, table_uri
from lake.storage import filesystem, safe_options
from lake.tables import open_or_create

__all__ = ["Lake", "TableInfo", "TableNotInLake"]


class TableNotInLake(LakeError, KeyError):
    """Raised when a table name matches no Delta table under the root."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        super().__init__(name)
        self.known = known

    def __str__(self) -> str:
        listed = ", ".join(self.known) or "none yet"
        return (
            f"no table {self.name!r} in the lake (tables: {listed}); "
            "run `eventlake tables` to list them"
        )


@dataclass(frozen=True)
class TableInfo:
    """What `eventlake tables` shows for one table."""

    name: str
    rows: int
    files: int
    size_bytes: int
    version: int
    last_commit: dt.datetime | None
    schema: str


class Lake:
    """The lake: its root, the storage options to reach it, and every table in it.

    One handle is made where the settings are read and passed down; lower
    layers open tables through it (:meth:`uri`, :meth:`table`,
    :meth:`open_or_create`) and never rebuild it.

    >>> import tempfile, pyarrow as pa
    >>> from deltalake import write_deltalake
    >>> root = tempfile.mkdtemp()
    >>> write_deltalake(f"{root}/silver/orders", pa.table({"x": [1, 2, 3]}))
    >>> lake = Lake(root)
    >>> lake.names()
    ['silver.orders']
    >>> lake.scan("silver/orders").select(pl.col("x").sum()).collect().item()
    6
    >>> lake.sql("SELECT max(x) AS m FROM silver.orders").item()
    3
    """

    def __init__(self, root: str, *, storage_options: dict[str, str] | None = None) -> None:
        self.root = root.rstrip("/") or "/"
        self.storage_options = safe_options(self.root, storage_options)

    def __repr__(self) -> str:
        return f"Lake({self.root!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Lake) and (self.root, self.storage_options) == (
            other.root,
            other.storage_options,
        )

    def __hash__(self) -> int:
        return hash(self.root)

    # -- naming -------------------------------------------------------------------

    def names(self) -> list[str]:
        """Every Delta table under the root, as ``layer.name`` (or ``dead_letters``)."""
        return sorted(self._discover())

    def _discover(self) -> Iterator[str]:
        fs, base = filesystem(self.root, self.storage_options)

        def is_table(path: str) -> bool:
            return fs.get_file_info(f"{path}/_delta_log").type == pafs.FileType.Directory

        for top in fs.get_file_info(pafs.FileSelector(base, allow_not_found=True)):
            if top.type != pafs.FileType.Directory:
                continue
            if top.base_name in LAYERS:
                for sub in fs.get_file_info(pafs.FileSelector(top.path)):
                    if sub.type == pafs.FileType.Directory and is_table(sub.path):
                        yield f"{top.base_name}.{from_segment(sub.base_name)}"
            elif is_table(top.path):
                yield top.base_name

    def uri(self, name: str) -> str:
        """The URI of table ``name`` (``layer.name``, ``layer/name`` or a top-level name)."""
        return table_uri(self.root, name)

    def exists(self, name: str) -> bool:
        """True if table ``name`` has been created."""
        return bool(DeltaTable.is_deltatable(self.uri(name), self.storage_options))

    def open_or_create(
        self,
        name: str,
        schema: pa.Schema,
        *,
        partition_by: list[str] | None = None,
        description: str | None = None,
        configuration: dict[str, str] | None = None,
    ) -> DeltaTable:
        """Table ``name``, created empty with ``schema`` if it does not exist yet."""
        return open_or_create(
            self.uri(name),
            schema,
            partition_by=partition_by,
            name=name.replace(".", "_").replace("-", "_"),
            description=description,
            configuration=configuration,
            storage_options=self.storage_options,
        )

    # -- reading ------------------------------------------------------------------

    def table(
        self, name: str, *, version: int | None = None, as_of: dt.datetime | str | None = None
    ) -> DeltaTable:
        """The Delta table ``name`` at its newest version, ``version`` or ``as_of``."""
        try:
            t = DeltaTable(self.uri(name), storage_options=self.storage_options)
        except TableNotFoundError:
            raise TableNotInLake(name, self.names()) from None
        if version is not None:
            t.load_as_version(version)
        elif as_of is not None:
            when = _timestamp(as_of)
            ms = when.timestamp() * 1000
            # Not load_as_version(datetime): before the first commit it loads version 0.
            versions = [h["version"] for h in t.history() if h["timestamp"] <= ms]
            if not versions:
                raise TableNotInLake(f"{name} as of {when.isoformat()}", self.names())
            t.load_as_version(max(versions))
        return t

    def scan(
        self, name: str, *, version: int | None = None, as_of: dt.datetime | str | None = None
    ) -> pl.LazyFrame:
        """A Polars LazyFrame over table ``name`` (optionally at ``version`` / ``as_of``).

        >>> Lake("/nowhere").scan("silver.orders")
        Traceback (most recent call last):
        ...
        lake.catalog.TableNotInLake: no table 'silver.orders' in the lake (tables: none yet); ...
        """
        return pl.scan_delta(self.table(name, version=version, as_of=as_of))

    def sql(self, query: str, *, as_of: dt.datetime | str | None = None) -> pl.DataFrame:
        """Run ``query`` over every table, each by its ``layer.name`` (quote names
        with ``-``: ``"silver.orders-value"``); all tables as of ``as_of`` if given."""
        ctx = pl.SQLContext()
        for name in self.names():
            try:
                ctx.register(name, self.scan(name, as_of=as_of))
            except TableNotInLake:  # created after as_of
                continue
        return ctx.execute(query, eager=True)

    def info(self, name: str) -> TableInfo:
        """Rows, files, size, version, last commit and schema of table ``name``."""
        t = self.table(name)
        adds = t.get_add_actions(flatten=True)
        cols = adds.column_names
        rows = sum(v or 0 for v in adds.column("num_records").to_pylist()) if adds.num_rows else 0
        size = sum(adds.column("size_bytes").to_pylist()) if "size_bytes" in cols else 0
        last = t.history(1)
        ts = last[0].get("timestamp") if last else None
        when = dt.datetime.fromtimestamp(ts / 1000, dt.UTC) if ts else None
        schema = ", ".join(f"{f.name} {f.type}" for f in pa.schema(t.schema().to_arrow()))
        return TableInfo(name, int(rows), adds.num_rows, int(size), t.version(), when, schema)

    def tables(self) -> list[TableInfo]:
        """:meth:`info` of every table."""
        return [self.info(n) for n in self.names()]


def _timestamp(value: dt.datetime | str) -> dt.datetime:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value
