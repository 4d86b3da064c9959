"""Kafka into the lake: the embedded broker and exactly-once ingest into bronze.

Imports only :mod:`lake` of eventlake.
"""

from ingest.batch import MicroBatch
from ingest.broker import EmbeddedBroker, free_port
from ingest.errors import (
    BrokerStartError,
    BrokerUnavailable,
    IngestError,
    OffsetOutOfRange,
    ReplayError,
    TopicNotFound,
)
from ingest.ingester import Ingester, IngestSummary
from ingest.kafka import consumer_config, ensure_topic, wait_for_broker
from ingest.metrics import IngestMetrics
from ingest.options import IngestOptions
from ingest.producer import Record, produce

__all__ = [
    "BrokerStartError",
    "BrokerUnavailable",
    "EmbeddedBroker",
    "IngestError",
    "IngestMetrics",
    "IngestOptions",
    "IngestSummary",
    "Ingester",
    "MicroBatch",
    "OffsetOutOfRange",
    "Record",
    "ReplayError",
    "TopicNotFound",
    "consumer_config",
    "ensure_topic",
    "free_port",
    "produce",
    "wait_for_broker",
]
