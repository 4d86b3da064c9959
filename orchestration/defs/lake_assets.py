"""Bronze (external, reported by `eventlake ingest`), silver per subject, dead letters.

- ``bronze/<topic>``: written by `eventlake ingest` outside Dagster runs, which
  reports a materialization per commit (offsets, rows, Delta version).
- ``silver/<subject>``: daily partitions; materializing a range rebuilds those
  days of the subject from the bronze of each topic that carries it
  (:func:`ingest.rebuild_silver`, one run per range), a no-op where the
  streaming path already wrote the same rows.
- ``dead_letters``: reprocesses each topic's dead letters; reports what is left.
"""

import dagster as dg
import polars as pl

from ingest import Decoder, SilverWriter, rebuild_silver
from lake import DeadLetters
from lake.names import silver
from orchestration.defs.metadata import days, days_metadata
from orchestration.defs.resources import LakeResource
from orchestration.defs.topology import Topology

__all__ = ["bronze_asset", "dead_letters_asset", "silver_asset"]

EAGER = dg.AutomationCondition.eager()


def bronze_asset(topic: str) -> dg.AssetSpec:
    """``bronze/<topic>``: external, reported by the ingest process."""
    return dg.AssetSpec(
        key=Topology.bronze(topic),
        description=(
            f"Every Kafka record of `{topic}` exactly once (bronze/{topic}), written by "
            "`eventlake ingest`, which reports each commit here."
        ),
        group_name="bronze",
        kinds={"kafka", "delta"},
    )


def silver_asset(
    topo: Topology, subject: str, partitions: dg.PartitionsDefinition
) -> dg.AssetsDefinition:
    """``silver/<subject>``, rebuilt from the bronze of its topics for a range of days."""
    topics = topo.subjects[subject]

    @dg.asset(
        key=topo.silver(subject),
        deps=[topo.bronze(t) for t in topics],
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        automation_condition=EAGER,
        group_name="silver",
        kinds={"avro", "delta"},
        description=(
            f"Decoded `{subject}` records, one typed column per Avro field plus lineage. "
            "Materializing days rebuilds them from bronze; unchanged days are not rewritten."
        ),
    )
    def silver_subject(
        context: dg.AssetExecutionContext, lake: LakeResource
    ) -> dg.MaterializeResult:
        start, end = days(context)
        handle, resolver = lake.handle(), lake.resolver()
        decoded = dead = 0
        rewritten: set[str] = set()
        for topic in topo.subjects[subject]:
            summary = rebuild_silver(
                handle,
                topic,
                resolver,
                start=start,
                end=end,
                subject_strategy=lake.strategy,
                subjects={subject},
                expectations=lake.expectations(),
            )
            context.log.info(f"{subject} from {topic}, {start}..{end}: {summary}")
            decoded += summary.records
            dead += summary.dead_letters
            rewritten |= set(summary.rewritten)
        return dg.MaterializeResult(
            metadata={
                **days_metadata(handle, silver(subject), start, end),
                "topics": ", ".join(topics) or "none yet",
                "records_decoded": decoded,
                "quarantined": dead,
                "rewritten": ", ".join(sorted(rewritten)) or "nothing (already equal)",
            }
        )

    return silver_subject


def dead_letters_asset(topo: Topology) -> dg.AssetsDefinition:
    """``dead_letters``: materializing reprocesses them."""

    @dg.asset(
        key=Topology.DEAD_LETTERS,
        deps=[topo.silver(s) for s in topo.subjects],
        automation_condition=EAGER,
        group_name="silver",
        kinds={"delta"},
        description=(
            "Records that could not be decoded, kept whole with the error. Materializing "
            "reprocesses them (after a schema was registered or a bug fixed)."
        ),
    )
    def dead_letters(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        handle, resolver, moved = lake.handle(), lake.resolver(), 0
        for topic in topo.topics:  # one resolver: the schema store is opened once
            decoder = Decoder(
                topic, resolver, subject_strategy=lake.strategy, expectations=lake.expectations()
            )
            moved += sum(SilverWriter(handle, decoder).reprocess().silver.values())
        table = DeadLetters.open(handle).read()
        kinds = (
            pl.DataFrame(table.select(["topic", "error_kind"]))
            .group_by("topic", "error_kind")
            .len()
        )
        context.log.info(f"moved {moved} dead letters to silver; {table.num_rows} left")
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": table.num_rows,
                "moved_to_silver": moved,
                "by_kind": dg.MetadataValue.md(
                    "| topic | kind | records |\n| --- | --- | --- |\n"
                    + "\n".join(
                        f"| {t} | {k} | {n} |" for t, k, n in kinds.sort("topic").iter_rows()
                    )
                ),
            }
        )

    return dead_letters
