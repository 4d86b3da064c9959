"""Telling Dagster what the ingest process committed: a materialization per commit.

Bronze is written outside Dagster runs, so the ingester reports each commit
of ``bronze/<topic>`` to the Dagster instance (``DAGSTER_HOME``) as a runless
materialization with the Delta version, rows and offsets; declarative
automation then sees new bronze data and materializes what depends on it.
"""

from __future__ import annotations

from collections.abc import Callable

import dagster as dg

from ingest import Committed
from orchestration.defs.topology import Topology

__all__ = ["bronze_reporter", "report_bronze"]


def report_bronze(
    instance: dg.DagsterInstance, topic: str, version: int, rows: int, offsets: str, note: str = ""
) -> None:
    """Record one bronze commit of ``topic`` on ``instance``."""
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            asset_key=Topology.bronze(topic),
            description=note or None,
            metadata={
                "delta_version": version,
                "dagster/row_count_added": rows,
                "offsets": offsets,
            },
        )
    )


def bronze_reporter(instance: dg.DagsterInstance) -> Callable[[Committed], None]:
    """An ``Ingester(on_commit=...)`` callback reporting every commit, of whichever
    topic, to ``instance``."""

    def on_commit(c: Committed) -> None:
        r = c.result
        if r.version is None:
            return
        offsets = " ".join(f"{p}:{a}-{b}" for p, (a, b) in sorted(r.ranges.items()))
        report_bronze(instance, c.topic, r.version, r.rows, offsets, str(c.decoded or ""))

    return on_commit
