"""Avro schemas: parsing, a normal form for identity, and compatibility rules.

Compatibility follows Avro's schema-resolution rules as implemented by Apache's
``avro`` package (:class:`avro.compatibility.ReaderWriterCompatibilityChecker`);
the levels are the Confluent Schema Registry's.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import avro.errors
import avro.schema
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from lake.errors import InvalidSchema

__all__ = [
    "COMPATIBILITY_LEVELS",
    "DEFAULT_COMPATIBILITY",
    "Compatibility",
    "ParsedSchema",
    "compatibility_problems",
    "parse_schema",
]

Compatibility = Literal[
    "BACKWARD",
    "BACKWARD_TRANSITIVE",
    "FORWARD",
    "FORWARD_TRANSITIVE",
    "FULL",
    "FULL_TRANSITIVE",
    "NONE",
]
COMPATIBILITY_LEVELS: tuple[str, ...] = get_args(Compatibility)
DEFAULT_COMPATIBILITY: Compatibility = "BACKWARD"  # Confluent's default, global and per subject


@dataclass(frozen=True)
class ParsedSchema:
    """A valid Avro schema: ``text`` is its normal form (sorted keys, no spaces)."""

    text: str
    fingerprint: str
    parsed: avro.schema.Schema

    @property
    def name(self) -> str | None:
        """Full name of a named schema (record, enum, fixed), else None."""
        return getattr(self.parsed, "fullname", None)


def parse_schema(text: str) -> ParsedSchema:
    """Parse Avro schema JSON; raise :class:`InvalidSchema` saying why not.

    >>> s = parse_schema('{"type": "record", "name": "O", "fields": [{"name": "a", "type": "int"}]}'
    ... )
    >>> s.text
    '{"fields":[{"name":"a","type":"int"}],"name":"O","type":"record"}'
    >>> parse_schema('{"type": "record", "name": "O"}')
    Traceback (most recent call last):
    ...
    lake.errors.InvalidSchema: invalid Avro schema: ...
    """
    try:
        parsed = avro.schema.parse(text)
    except (avro.errors.AvroException, json.JSONDecodeError, TypeError, ValueError) as e:
        raise InvalidSchema(str(e) or type(e).__name__) from None
    normal = json.dumps(parsed.to_json(), sort_keys=True, separators=(",", ":"))
    return ParsedSchema(normal, hashlib.sha256(normal.encode()).hexdigest(), parsed)


def _problems(reader: ParsedSchema, writer: ParsedSchema, role: str) -> list[str]:
    result = ReaderWriterCompatibilityChecker().get_compatibility(
        reader=reader.parsed, writer=writer.parsed
    )
    if result.compatibility is SchemaCompatibilityType.compatible:
        return []
    kinds = ", ".join(sorted({k.value for k in result.incompatibilities}))
    where = ", ".join(sorted(result.locations))
    what = ", ".join(sorted(result.messages))
    return [f"{role}: {kinds} at {where} ({what})"]


def compatibility_problems(
    new: ParsedSchema, previous: Sequence[ParsedSchema], level: str
) -> list[str]:
    """Why ``new`` breaks ``level`` against ``previous`` (oldest first); [] if it does not.

    BACKWARD: the new schema reads data written with the latest; FORWARD: the
    latest reads data written with the new one; FULL: both; *_TRANSITIVE:
    against every previous version, not only the latest.

    >>> v1 = parse_schema('{"type":"record","name":"O","fields":[{"name":"a","type":"int"}]}')
    >>> v2 = parse_schema('{"type":"record","name":"O","fields":[{"name":"a","type":"int"},'
    ...                   '{"name":"b","type":"string"}]}')
    >>> compatibility_problems(v2, [v1], "BACKWARD")  # doctest: +NORMALIZE_WHITESPACE
    ['new schema cannot read data written with version 1:
      reader_field_missing_default_value at /fields/1 (b)']
    >>> compatibility_problems(v2, [v1], "FORWARD")
    []
    """
    if level not in COMPATIBILITY_LEVELS:
        raise ValueError(
            f"unknown compatibility level {level!r}; valid: {', '.join(COMPATIBILITY_LEVELS)}"
        )
    if level == "NONE" or not previous:
        return []
    versions = list(enumerate(previous, start=1))
    against = versions if level.endswith("_TRANSITIVE") else versions[-1:]
    out: list[str] = []
    for number, old in against:
        if level.startswith(("BACKWARD", "FULL")):
            out += _problems(new, old, f"new schema cannot read data written with version {number}")
        if level.startswith(("FORWARD", "FULL")):
            out += _problems(
                old, new, f"version {number} cannot read data written with the new schema"
            )
    return out
