"""Kafka into the lake: the embedded broker, exactly-once ingest into bronze, decoding
into silver and dead letters, data-quality expectations, the schema registry's REST
API, replays.

Imports only :mod:`lake` of eventlake.
"""

from ingest.batch import MicroBatch
from ingest.broker import EmbeddedBroker, free_port
from ingest.committer import Committed
from ingest.decoder import Decoded, Decoder
from ingest.errors import (
    BrokerStartError,
    BrokerUnavailable,
    IngestError,
    InvalidEvent,
    OffsetOutOfRange,
    ReplayError,
    TopicNotFound,
)
from ingest.event_producer import EventProducer
from ingest.expectations import Expectation, Expectations
from ingest.ingester import Ingester, IngestSummary, TopicSummary
from ingest.kafka import (
    client_config,
    consumer_config,
    ensure_topic,
    high_watermarks,
    wait_for_broker,
)
from ingest.metrics import IngestMetrics
from ingest.options import IngestOptions
from ingest.producer import Record, produce
from ingest.rebuild import RebuildSummary, rebuild_silver
from ingest.republish import RepublishSummary, republish
from ingest.schema_registry_api import SchemaRegistryServer
from ingest.schema_resolver import SchemaResolver
from ingest.silver_writer import DecodeSummary, SilverWriter
from ingest.sink import Sink

__all__ = [
    "BrokerStartError",
    "BrokerUnavailable",
    "Committed",
    "DecodeSummary",
    "Decoded",
    "Decoder",
    "EmbeddedBroker",
    "EventProducer",
    "Expectation",
    "Expectations",
    "IngestError",
    "IngestMetrics",
    "IngestOptions",
    "IngestSummary",
    "Ingester",
    "InvalidEvent",
    "MicroBatch",
    "OffsetOutOfRange",
    "RebuildSummary",
    "Record",
    "ReplayError",
    "RepublishSummary",
    "SchemaRegistryServer",
    "SchemaResolver",
    "SilverWriter",
    "Sink",
    "TopicNotFound",
    "TopicSummary",
    "client_config",
    "consumer_config",
    "ensure_topic",
    "free_port",
    "high_watermarks",
    "produce",
    "rebuild_silver",
    "republish",
    "wait_for_broker",
]
