"""The lake's vocabulary: every table name, subject name and lineage column, in one place.

Tables are named ``layer.name`` (``bronze.orders``, ``silver.orders-value``,
``features.order_eta``, ``models.versions``) or by one word for the few
tables without a layer (``dead_letters``, ``erasures``); :func:`table_uri`
turns a name into its place under the lake root (``<root>/bronze/orders``).
No other module spells a table path, a subject or a lineage column: they call
the functions and use the constants here.

Topic, feature set and model names become path segments, so they are
validated against Kafka's topic character set before any path is built from
them. Subjects may hold any character Confluent's registry accepts (``/``,
``:``, ``*``, ``..``): a subject in that character set is its own path segment,
any other becomes ``~`` and the base32 of its UTF-8 bytes (:func:`segment`),
which never leaves its folder and reads back with :func:`from_segment`.
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Literal, get_args

import pyarrow as pa

from lake.errors import InvalidTableName

__all__ = [
    "COORDINATES",
    "DATE",
    "DEAD_LETTERS",
    "ERASURES",
    "KAFKA_OFFSET",
    "KAFKA_PARTITION",
    "KAFKA_TIMESTAMP",
    "KAFKA_TOPIC",
    "LABEL_COORDINATES",
    "LAYERS",
    "QUALITY",
    "REPORTS",
    "SCHEMA_ID",
    "SCHEMA_VERSION",
    "UTC_MICROS",
    "Layer",
    "ModelTable",
    "RegistryTable",
    "SubjectStrategy",
    "bronze",
    "feature_state",
    "features",
    "from_segment",
    "layer_of",
    "model_table",
    "predictions",
    "registry_table",
    "reports_dir",
    "segment",
    "silver",
    "subject",
    "table_uri",
    "topic_of_subject",
    "validate_name",
    "value_subject",
]

Layer = Literal[
    "bronze", "silver", "features", "feature_state", "models", "predictions", "registry"
]
LAYERS: tuple[str, ...] = get_args(Layer)
DEAD_LETTERS = "dead_letters"
ERASURES = "erasures"
QUALITY = "quality"
REPORTS = "_reports"  # a folder of files (plots), not a table
RegistryTable = Literal["schemas", "config"]
ModelTable = Literal["versions", "aliases", "decisions", "drift", "trace", "launches", "access"]
SubjectStrategy = Literal["topic", "record", "topic_record"]

# The time type of every timestamp column in the lake: microseconds, UTC.
UTC_MICROS = pa.timestamp("us", tz="UTC")

# Lineage: where a derived row came from. A record's Kafka coordinates ...
KAFKA_TOPIC = "_kafka_topic"
KAFKA_PARTITION = "_kafka_partition"
KAFKA_OFFSET = "_kafka_offset"
COORDINATES: tuple[str, str, str] = (KAFKA_TOPIC, KAFKA_PARTITION, KAFKA_OFFSET)
# ... its Kafka timestamp, writer schema, and the date partition of derived tables ...
KAFKA_TIMESTAMP = "_kafka_timestamp"
SCHEMA_ID = "_schema_id"
SCHEMA_VERSION = "_schema_version"
DATE = "_date"
# ... and, in feature rows, the coordinates of the event that carried the label.
LABEL_COORDINATES: tuple[str, str, str] = ("_label_topic", "_label_partition", "_label_offset")

_KAFKA_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")
_LAYERED = re.compile(r"([a-z_]+)[./](.*)", re.DOTALL)


def validate_name(name: str) -> str:
    """Return ``name`` if it is a valid Kafka topic name usable as a path segment.

    >>> validate_name("orders.v1")
    'orders.v1'
    >>> validate_name("../etc")
    Traceback (most recent call last):
    ...
    lake.errors.InvalidTableName: '../etc' cannot be used as a table name: ...
    """
    if not isinstance(name, str) or not _KAFKA_NAME.fullmatch(name):
        raise InvalidTableName(str(name), "it has characters outside Kafka's topic character set")
    if name in (".", ".."):
        raise InvalidTableName(name, "'.' and '..' are not allowed")
    return name


def _name(layer: Layer, name: str) -> str:
    return f"{layer}.{validate_name(name)}"


def bronze(topic: str) -> str:
    """The bronze table of ``topic``: every Kafka record exactly as received.

    >>> bronze("orders")
    'bronze.orders'
    """
    return _name("bronze", topic)


def silver(subject: str) -> str:
    """The silver table of ``subject``: its decoded records.

    >>> silver("orders-value"), silver("team/orders:v1")
    ('silver.orders-value', 'silver.team/orders:v1')
    """
    return f"silver.{subject}"


def features(feature_set: str) -> str:
    """The feature rows of ``feature_set``.

    >>> features("order_eta")
    'features.order_eta'
    """
    return _name("features", feature_set)


def feature_state(feature_set: str) -> str:
    """The per-key aggregation state of ``feature_set``.

    >>> feature_state("order_eta")
    'feature_state.order_eta'
    """
    return _name("feature_state", feature_set)


def predictions(model: str) -> str:
    """The predictions of ``model``.

    >>> predictions("eta")
    'predictions.eta'
    """
    return _name("predictions", model)


def registry_table(table: RegistryTable) -> str:
    """A table of the schema registry's storage.

    >>> registry_table("schemas")
    'registry.schemas'
    """
    if table not in get_args(RegistryTable):
        raise ValueError(f"unknown registry table {table!r}; valid: schemas, config")
    return _name("registry", table)


def model_table(table: ModelTable) -> str:
    """A table of the model registry.

    >>> model_table("versions")
    'models.versions'
    """
    if table not in get_args(ModelTable):
        raise ValueError(
            f"unknown model registry table {table!r}; valid: {', '.join(get_args(ModelTable))}"
        )
    return _name("models", table)


def layer_of(name: str) -> tuple[str | None, str]:
    """``(layer, rest)`` of a table name; ``layer`` is None for a table without one.
    ``layer/name`` is accepted for ``layer.name``.

    >>> layer_of("silver.orders-value"), layer_of("bronze/orders.v1"), layer_of("dead_letters")
    (('silver', 'orders-value'), ('bronze', 'orders.v1'), (None, 'dead_letters'))
    """
    m = _LAYERED.fullmatch(name)
    if m and m.group(1) in LAYERS:
        return m.group(1), m.group(2)
    return None, name


_ENCODED = "~"  # outside Kafka's character set: an encoded segment never equals a plain one
_HASHED = "~~"  # outside base32 too
_MAX_SEGMENT = 255  # bytes in a file name on common filesystems


def segment(name: str) -> str:
    """The path segment of a subject's table: the subject itself when it is a plain
    name (Kafka's character set, not ``.`` or ``..``), else ``~`` + base32 of its
    UTF-8 bytes. Beyond 255 characters the segment is ``~~`` + a BLAKE2 digest,
    which reads back only through the registry's list of subjects.

    >>> segment("orders-value"), segment("../etc"), segment("a/b")
    ('orders-value', '~fyxc6zlumm', '~mexwe')
    >>> from_segment(segment("../etc")), len(segment("x" * 10_000))
    ('../etc', 66)
    """
    if _KAFKA_NAME.fullmatch(name) and name not in (".", ".."):
        return name
    encoded = _ENCODED + base64.b32encode(name.encode()).decode().rstrip("=").lower()
    if len(encoded) <= _MAX_SEGMENT:
        return encoded
    return _HASHED + hashlib.blake2b(name.encode(), digest_size=32).hexdigest()


def from_segment(seg: str) -> str:
    """The name a path segment stands for (see :func:`segment`); a hashed segment is
    returned as it is.

    >>> from_segment("orders-value"), from_segment("~mexwe")
    ('orders-value', 'a/b')
    """
    if not seg.startswith(_ENCODED) or seg.startswith(_HASHED):
        return seg
    body = seg[1:].upper()
    return base64.b32decode(body + "=" * (-len(body) % 8)).decode()


def table_uri(root: str, name: str) -> str:
    """The URI of table ``name`` under the lake ``root``.

    >>> table_uri("/data/lake", "bronze.orders")
    '/data/lake/bronze/orders'
    >>> table_uri("s3://bucket/lake/", "dead_letters")
    's3://bucket/lake/dead_letters'
    >>> table_uri("/data/lake", "silver./etc/passwd")
    '/data/lake/silver/~f5sxiyzpobqxg43xmq'
    >>> table_uri("/data/lake", "bronze.../etc")
    Traceback (most recent call last):
    ...
    lake.errors.InvalidTableName: '../etc' cannot be used as a table name: ...
    """
    layer, rest = layer_of(name)
    if layer == "silver":
        return f"{root.rstrip('/')}/silver/{segment(rest)}"
    path = f"{layer}/{validate_name(rest)}" if layer else validate_name(rest)
    return f"{root.rstrip('/')}/{path}"


def reports_dir(root: str) -> str:
    """The folder of report files (plots) under a local lake ``root``.

    >>> reports_dir("/data/lake/")
    '/data/lake/_reports'
    """
    return f"{root.rstrip('/')}/{REPORTS}"


def value_subject(topic: str) -> str:
    """The subject of ``topic``'s values under the ``topic`` strategy (Confluent's default).

    >>> value_subject("orders")
    'orders-value'
    """
    return f"{topic}-value"


def subject(topic: str, strategy: SubjectStrategy, record: str | None) -> str | None:
    """The subject of a record of ``topic`` whose schema's full name is ``record``,
    under Confluent's subject name ``strategy``; None when the record has no name.

    >>> subject("orders", "topic", "demo.Order")
    'orders-value'
    >>> subject("orders", "record", "demo.Order"), subject("orders", "topic_record", "demo.Order")
    ('demo.Order', 'orders-demo.Order')
    """
    if strategy == "topic":
        return value_subject(topic)
    if record is None:
        return None
    if strategy == "record":
        return record
    if strategy == "topic_record":
        return f"{topic}-{record}"
    raise ValueError(f"unknown subject strategy {strategy!r}; valid: topic, record, topic_record")


def topic_of_subject(subject: str, strategy: SubjectStrategy) -> str | None:
    """The topic a ``subject`` belongs to under ``strategy``; None when the subject
    does not say (the ``record`` strategy: one record type may travel on any topic).

    >>> topic_of_subject("orders-value", "topic"), topic_of_subject("demo.Order", "record")
    ('orders', None)
    >>> topic_of_subject("orders-v2-demo.Order", "topic_record")
    'orders-v2'
    """
    if strategy == "topic":
        return subject.removesuffix("-value") if subject.endswith("-value") else None
    if strategy == "topic_record":  # record names have no '-': the last one splits
        topic, sep, _ = subject.rpartition("-")
        return topic if sep else None
    return None
