"""Invariant 2 as a function: every bronze offset is in exactly one of silver or dead letters."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow.compute as pc
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from lake.catalog import Lake
from lake.names import table_uri, validate_name
from lake.offsets import decoded_app_id, txn_versions

__all__ = ["PartitionCoverage", "decode_coverage"]


@dataclass(frozen=True)
class PartitionCoverage:
    """One partition's reconciliation; ``ok`` when nothing is missing or doubled."""

    partition: int
    bronze: int
    silver: int
    dead_letters: int
    missing: list[int]
    duplicated: list[int]

    @property
    def ok(self) -> bool:
        return not self.missing and not self.duplicated


def _offsets(
    uri: str,
    topic_col: str,
    part_col: str,
    off_col: str,
    topic: str,
    storage_options: dict[str, str] | None,
) -> dict[int, np.ndarray]:
    try:
        dt = DeltaTable(uri, storage_options=storage_options)
    except TableNotFoundError:
        return {}
    t = dt.to_pyarrow_dataset().to_table(
        columns=[part_col, off_col], filter=pc.field(topic_col) == topic
    )
    parts = t.column(part_col).to_numpy()
    offs = t.column(off_col).to_numpy()
    return {int(p): offs[parts == p] for p in np.unique(parts)}


def decode_coverage(
    root: str,
    topic: str,
    *,
    decoded_only: bool = False,
    storage_options: dict[str, str] | None = None,
) -> list[PartitionCoverage]:
    """Reconcile ``bronze/<topic>`` with every silver table and ``dead_letters``.

    Ready for an asset check: all ``ok`` means invariant 2 holds for the topic.
    With ``decoded_only``, only bronze offsets up to the decode cursor are
    expected downstream, so a live ingest's newest records do not count as
    missing; without it, pass after an ingest run has finished.
    """
    validate_name(topic)
    bronze = _offsets(
        table_uri(root, "bronze", topic), "topic", "partition", "offset", topic, storage_options
    )
    down: dict[int, list[np.ndarray]] = {}
    silver_counts: dict[int, int] = {}
    names = Lake(root, storage_options=storage_options).names()
    subjects = [n.split(".", 1)[1] for n in names if n.startswith("silver.")]
    for subject in subjects:
        for p, o in _offsets(
            table_uri(root, "silver", subject),
            "_kafka_topic",
            "_kafka_partition",
            "_kafka_offset",
            topic,
            storage_options,
        ).items():
            down.setdefault(p, []).append(o)
            silver_counts[p] = silver_counts.get(p, 0) + len(o)
    dead = _offsets(
        f"{root.rstrip('/')}/dead_letters", "topic", "partition", "offset", topic, storage_options
    )
    for p, o in dead.items():
        down.setdefault(p, []).append(o)
    upto = _decode_cursor(root, topic, list(bronze), storage_options) if decoded_only else None
    out = []
    for p in sorted(set(bronze) | set(down)):
        got = np.concatenate(down.get(p, [np.zeros(0, np.int64)]))
        values, counts = np.unique(got, return_counts=True)
        expected = bronze.get(p, np.zeros(0, np.int64))
        if upto is not None:
            limit = upto.get(p)
            expected = expected[expected <= (-1 if limit is None else limit)]
        missing = np.setdiff1d(expected, values)
        out.append(
            PartitionCoverage(
                p,
                len(expected),
                silver_counts.get(p, 0),
                len(dead.get(p, [])),
                missing.tolist(),
                values[counts > 1].tolist(),
            )
        )
    return out


def _decode_cursor(
    root: str, topic: str, partitions: list[int], storage_options: dict[str, str] | None
) -> dict[int, int | None]:
    """The decode cursor per partition, read without creating ``dead_letters``."""
    try:
        table = DeltaTable(f"{root.rstrip('/')}/dead_letters", storage_options=storage_options)
    except TableNotFoundError:
        return {}
    return txn_versions(table, lambda p: decoded_app_id(topic, p), partitions)
