"""Table names and where tables live under the lake root.

Topic and subject names become path segments, so they are validated against
Kafka's topic character set before any path is built from them.
"""

from __future__ import annotations

import re
from typing import Literal

from lake.errors import InvalidTableName

__all__ = ["Layer", "table_uri", "validate_name"]

Layer = Literal["bronze", "silver", "features", "models", "predictions", "registry"]

_LAYERS: tuple[str, ...] = ("bronze", "silver", "features", "models", "predictions", "registry")
_KAFKA_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")


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


def table_uri(root: str, layer: Layer, name: str) -> str:
    """Return the URI of table ``layer/name`` under the lake ``root``.

    >>> table_uri("/data/lake", "bronze", "orders")
    '/data/lake/bronze/orders'
    >>> table_uri("s3://bucket/lake/", "silver", "orders")
    's3://bucket/lake/silver/orders'
    """
    if layer not in _LAYERS:
        raise ValueError(f"unknown layer {layer!r}; valid layers: {', '.join(_LAYERS)}")
    return f"{root.rstrip('/')}/{layer}/{validate_name(name)}"
