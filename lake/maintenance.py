"""Keeping tables fast and small: compaction, checkpoints, log cleanup, vacuum.

Every micro-batch commit adds a file per date partition; a day of ingest at
four commits a second leaves hundreds of thousands of small files, and every
query pays for each one. :func:`maintain` bin-packs them into large files
(``optimize.compact``), writes a checkpoint so readers skip replaying the
JSON log, drops expired log entries, and vacuums files no version newer than
the retention still needs.

Compaction only rewrites data: it never changes rows or the ``txn`` actions
the exactly-once fences read, so it can run next to a live ingest. A commit
that races with an ingest commit is retried by delta-rs's conflict checker,
and by this module when that gives up.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from deltalake.exceptions import CommitFailedError

from lake.catalog import Lake

__all__ = ["DEFAULT_RETENTION_HOURS", "MaintenanceReport", "maintain", "maintain_lake"]

log = logging.getLogger(__name__)

DEFAULT_RETENTION_HOURS = 168  # Delta's default: a week of time travel, safe for readers
_ATTEMPTS = 5


@dataclass(frozen=True)
class MaintenanceReport:
    """What one :func:`maintain` call did to one table."""

    uri: str
    files_before: int
    files_after: int
    files_removed: int  # by compaction
    files_added: int
    vacuumed: int  # files deleted from storage
    version: int
    seconds: float

    def __str__(self) -> str:
        return (
            f"{self.uri}: {self.files_before} -> {self.files_after} files "
            f"(compacted {self.files_removed} into {self.files_added}), "
            f"vacuumed {self.vacuumed}, version {self.version}, {self.seconds:.1f} s"
        )


def maintain(
    lake: Lake,
    name: str,
    *,
    compact: bool = True,
    vacuum: bool = True,
    retention_hours: float = DEFAULT_RETENTION_HOURS,
    target_size: int | None = None,
) -> MaintenanceReport:
    """Compact, checkpoint, clean up the log of, and vacuum table ``name`` of ``lake``.

    A ``retention_hours`` under the default breaks time travel to older versions
    and readers still on them (a warning is logged); :mod:`lake.erasure` uses 0
    to remove erased data for good.

    >>> import tempfile, pyarrow as pa
    >>> from deltalake import write_deltalake
    >>> lake = Lake(tempfile.mkdtemp())
    >>> for i in range(5):
    ...     write_deltalake(lake.uri("silver.s"), pa.table({"x": [i]}), mode="append")
    >>> r = maintain(lake, "silver.s")
    >>> (r.files_before, r.files_after, r.files_removed, r.files_added)
    (5, 1, 5, 1)
    """
    t0 = time.monotonic()
    table = lake.table(name)
    uri = table.table_uri
    before = len(table.file_uris())
    removed = added = 0
    if compact:
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                metrics = table.optimize.compact(target_size=target_size)
                removed = int(metrics.get("numFilesRemoved", 0))
                added = int(metrics.get("numFilesAdded", 0))
                break
            except CommitFailedError as e:
                if attempt == _ATTEMPTS:
                    raise
                log.info("%s: compaction raced with a commit (%s); retrying", uri, e)
                table.update_incremental()
    table.create_checkpoint()
    table.cleanup_metadata()
    vacuumed: list[str] = []
    if vacuum:
        if retention_hours < DEFAULT_RETENTION_HOURS:
            log.warning(
                "%s: vacuuming with %s h retention: versions older than that can no longer be read",
                uri,
                retention_hours,
            )
        vacuumed = table.vacuum(
            retention_hours=int(retention_hours),
            dry_run=False,
            enforce_retention_duration=False,
        )
    table.update_incremental()
    report = MaintenanceReport(
        uri,
        before,
        len(table.file_uris()),
        removed,
        added,
        len(vacuumed),
        table.version(),
        time.monotonic() - t0,
    )
    log.info("maintained %s", report)
    return report


def maintain_lake(
    lake: Lake,
    names: Iterable[str] | None = None,
    *,
    compact: bool = True,
    vacuum: bool = True,
    retention_hours: float = DEFAULT_RETENTION_HOURS,
) -> Iterator[tuple[str, MaintenanceReport]]:
    """:func:`maintain` each table ``names`` of ``lake`` (default: all), one at a time.

    >>> import tempfile, pyarrow as pa
    >>> from deltalake import write_deltalake
    >>> lake = Lake(tempfile.mkdtemp())
    >>> write_deltalake(lake.uri("silver.s"), pa.table({"x": [1]}))
    >>> [(name, r.files_after) for name, r in maintain_lake(lake)]
    [('silver.s', 1)]
    """
    for name in names or lake.names():
        yield (
            name,
            maintain(lake, name, compact=compact, vacuum=vacuum, retention_hours=retention_hours),
        )
