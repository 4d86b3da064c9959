"""Kafka offsets stored in the Delta log (the exactly-once key).

Every bronze commit carries one Delta ``txn`` action per Kafka topic-partition
whose records it adds: ``appId`` is :func:`txn_app_id` and ``version`` is the
last offset written. The Delta log is therefore the ingester's offset store;
Kafka consumer-group offsets only serve lag monitoring.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from deltalake import DeltaTable

__all__ = [
    "committed_offsets",
    "dead_letter_app_id",
    "decoded_app_id",
    "silver_app_id",
    "source_app_id",
    "txn_app_id",
    "txn_versions",
]


def txn_app_id(topic: str, partition: int) -> str:
    """Return the Delta ``txn`` application id for one Kafka topic-partition.

    This is the only place the key is built: changing it would make every
    ingester forget where it stopped.

    >>> txn_app_id("orders", 2)
    'eventlake-bronze:orders:2'
    """
    return f"eventlake-bronze:{topic}:{partition}"


def source_app_id(topic: str, source_id: str) -> str:
    """Return the Delta ``txn`` application id that binds a bronze table to one
    incarnation of its topic (Kafka's topic id, new each time a topic is created).

    >>> source_app_id("orders", "AaIAlHM/dqCSYkrM0CiEXA")
    'eventlake-bronze-source:orders:AaIAlHM/dqCSYkrM0CiEXA'
    """
    return f"eventlake-bronze-source:{topic}:{source_id}"


def silver_app_id(topic: str, partition: int) -> str:
    """The ``txn`` app id of a silver table: last offset of ``topic[partition]`` it holds.

    >>> silver_app_id("orders", 0)
    'eventlake-silver:orders:0'
    """
    return f"eventlake-silver:{topic}:{partition}"


def dead_letter_app_id(topic: str, partition: int) -> str:
    """The ``txn`` app id of ``dead_letters``: last offset of ``topic[partition]`` it holds.

    >>> dead_letter_app_id("orders", 0)
    'eventlake-dead-letters:orders:0'
    """
    return f"eventlake-dead-letters:{topic}:{partition}"


def decoded_app_id(topic: str, partition: int) -> str:
    """The decode cursor, kept in ``dead_letters``: every bronze offset of
    ``topic[partition]`` up to this one is in silver or in dead letters.

    >>> decoded_app_id("orders", 0)
    'eventlake-decoded:orders:0'
    """
    return f"eventlake-decoded:{topic}:{partition}"


def committed_offsets(
    table: DeltaTable, topic: str, partitions: Iterable[int]
) -> dict[int, int | None]:
    """Return the last offset committed to ``table`` for each partition (None if none).

    Reads the snapshot ``table`` currently holds; call ``table.update_incremental()``
    first for the latest.

    >>> import tempfile, pyarrow as pa
    >>> from deltalake import write_deltalake, CommitProperties, Transaction
    >>> uri = tempfile.mkdtemp()
    >>> props = CommitProperties(app_transactions=[Transaction(txn_app_id("t", 0), 41)])
    >>> write_deltalake(uri, pa.table({"x": [1]}), commit_properties=props)
    >>> committed_offsets(DeltaTable(uri), "t", [0, 1])
    {0: 41, 1: None}
    """
    return txn_versions(table, lambda p: txn_app_id(topic, p), partitions)


def txn_versions(
    table: DeltaTable, app_id: Callable[[int], str], partitions: Iterable[int]
) -> dict[int, int | None]:
    """The ``txn`` version of ``app_id(p)`` for each partition ``p`` (None if absent),
    in the snapshot ``table`` holds.

    >>> import tempfile, pyarrow as pa
    >>> from deltalake import write_deltalake
    >>> uri = tempfile.mkdtemp()
    >>> write_deltalake(uri, pa.table({"x": [1]}))
    >>> txn_versions(DeltaTable(uri), lambda p: f"app:{p}", [0])
    {0: None}
    """
    return {p: table.transaction_version(app_id(p)) for p in partitions}
