"""What the Dagster definitions are built for: topics, subjects, feature sets, models,
and the asset key of each.

Topics and subjects come from three places: the registered models (their feature
sets name silver tables), the tables already in the lake (bronze per topic,
silver per subject, with the topics each silver table holds read from its Delta
log), and the subject strategy where it names a topic's subject (``topic``) or a
subject's topic (``topic``, ``topic_record``). Under the ``record`` strategy a
subject's topics are known once its silver table has rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping

import dagster as dg

from features import FeatureSet, Label
from lake import Lake, silver_topics
from lake.names import (
    DEAD_LETTERS,
    SubjectStrategy,
    layer_of,
    segment,
    topic_of_subject,
    value_subject,
)
from training import ModelSpec

__all__ = ["Topology", "subject_of"]


def subject_of(table: str) -> str:
    """The subject of a silver table name.

    >>> subject_of("silver.order_placed-value")
    'order_placed-value'
    """
    layer, rest = layer_of(table)
    if layer != "silver":
        raise ValueError(f"{table!r} is not a silver table (silver.<subject>)")
    return rest


class Topology:
    """Topics, subjects (each with its topics), feature sets, models, and the first day
    of data.

    >>> from orchestration.demo.definitions import ETA
    >>> t = Topology([ETA])
    >>> t.topics, t.subjects["order_placed-value"]
    (['order_delivered', 'order_placed'], ['order_placed'])
    """

    def __init__(
        self,
        specs: Iterable[ModelSpec],
        *,
        topics: Iterable[str] = (),
        subjects: Mapping[str, Iterable[str]] | None = None,
        strategy: SubjectStrategy = "topic",
        first_day: dt.date | None = None,
    ) -> None:
        self.specs = list(specs)
        self.first_day = first_day
        """The first day of event time bronze holds (None: no data yet)."""
        self.strategy = strategy
        sets = {s.feature_set.name: s.feature_set for s in self.specs}
        self.feature_sets: list[FeatureSet] = [sets[n] for n in sorted(sets)]
        found: dict[str, set[str]] = {s: set(t) for s, t in (subjects or {}).items()}
        for fs in self.feature_sets:
            for table in (fs.source, fs.label.table if isinstance(fs.label, Label) else None):
                if table is not None:
                    found.setdefault(subject_of(table), set())
        all_topics = set(topics)
        if strategy == "topic":
            for topic in all_topics:
                found.setdefault(value_subject(topic), set()).add(topic)
        for s, ts in found.items():
            derived = topic_of_subject(s, strategy)
            if derived is not None:
                ts.add(derived)
            all_topics |= ts
        self.topics = sorted(all_topics)
        self.subjects: dict[str, list[str]] = {s: sorted(found[s]) for s in sorted(found)}

    @classmethod
    def discover(
        cls, specs: Iterable[ModelSpec], lake: Lake, strategy: SubjectStrategy
    ) -> Topology:
        """The topology of ``specs`` over what ``lake`` holds."""
        topics, subjects, days = [], {}, set()
        for name in lake.names():
            layer, rest = layer_of(name)
            if layer == "bronze":
                topics.append(rest)
                days |= {p["date"] for p in lake.table(name).partitions()}  # from the log
            elif layer == "silver":
                subjects[rest] = silver_topics(lake, rest)
        first = dt.date.fromisoformat(min(days)) if days else None
        return cls(specs, topics=topics, subjects=subjects, strategy=strategy, first_day=first)

    def subjects_of(self, topic: str) -> list[str]:
        """The subjects known to carry records of ``topic``."""
        return [s for s, ts in self.subjects.items() if topic in ts]

    @staticmethod
    def bronze(topic: str) -> dg.AssetKey:
        return dg.AssetKey(["bronze", topic])

    @staticmethod
    def silver(subject: str) -> dg.AssetKey:
        """The silver asset of ``subject``; a subject outside Kafka's character set is
        named by its table folder (Dagster names allow letters, digits and ``_``).

        >>> Topology.silver("orders-value").path, Topology.silver("a/b").path
        (['silver', 'orders-value'], ['silver', 'encoded_mexwe'])
        """
        folder = segment(subject)
        return dg.AssetKey(
            ["silver", "encoded_" + folder.lstrip("~") if folder[0] == "~" else folder]
        )

    @staticmethod
    def features(fs: FeatureSet) -> dg.AssetKey:
        return dg.AssetKey(["features", fs.name])

    @staticmethod
    def model(spec: ModelSpec, part: str) -> dg.AssetKey:
        return dg.AssetKey(["models", spec.name, part])

    @staticmethod
    def predictions(spec: ModelSpec) -> dg.AssetKey:
        return dg.AssetKey(["predictions", spec.name])

    DEAD_LETTERS = dg.AssetKey([DEAD_LETTERS])
