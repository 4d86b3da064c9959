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
from typing import Any, Literal, get_args

import avro.errors
import avro.name
import avro.schema
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from lake.errors import InvalidSchema

__all__ = [
    "COMPATIBILITY_LEVELS",
    "DEFAULT_COMPATIBILITY",
    "Compatibility",
    "ParsedSchema",
    "Reference",
    "compatibility_problems",
    "fingerprint",
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


@dataclass(frozen=True)
class Reference:
    """A schema reference: the named type ``name`` is defined by ``subject``'s ``version``."""

    name: str
    subject: str
    version: int

    def to_json(self) -> dict[str, Any]:
        """The reference as the REST API spells it."""
        return {"name": self.name, "subject": self.subject, "version": self.version}


def parse_schema(text: str, named: Sequence[str] = ()) -> ParsedSchema:
    """Parse Avro schema JSON; raise :class:`InvalidSchema` saying why not.

    ``named`` are the texts of the schemas it references (each after the ones
    it references itself): their named types are known while ``text`` is
    parsed, and the normal form inlines them, so it stands alone. Every field
    default must match its type.

    >>> s = parse_schema('{"type": "record", "name": "O", "fields": [{"name": "a", "type": "int"}]}'
    ... )
    >>> s.text
    '{"fields":[{"name":"a","type":"int"}],"name":"O","type":"record"}'
    >>> parse_schema('{"type": "record", "name": "O"}')
    Traceback (most recent call last):
    ...
    lake.errors.InvalidSchema: invalid Avro schema: ...
    >>> parse_schema('{"type":"record","name":"O",'
    ...              '"fields":[{"name":"a","type":"string","default":null}]}')
    Traceback (most recent call last):
    ...
    lake.errors.InvalidSchema: invalid Avro schema: the default of field O.a (None) is not a string
    >>> addr = '{"type":"record","name":"Addr","fields":[{"name":"city","type":"string"}]}'
    >>> parse_schema('{"type":"record","name":"O","fields":[{"name":"to","type":"Addr"}]}', [addr]
    ... ).text.count("city")
    1
    """
    names = avro.name.Names()
    try:
        for dependency in named:
            avro.schema.make_avsc_object(json.loads(dependency), names)
        parsed = avro.schema.make_avsc_object(json.loads(text), names)
    except (avro.errors.AvroException, json.JSONDecodeError, TypeError, ValueError) as e:
        raise InvalidSchema(str(e) or type(e).__name__) from None
    problem = _default_problem(parsed, set())
    if problem:
        raise InvalidSchema(problem)
    normal = json.dumps(parsed.to_json(), sort_keys=True, separators=(",", ":"))
    return ParsedSchema(normal, hashlib.sha256(normal.encode()).hexdigest(), parsed)


def fingerprint(schema: ParsedSchema, references: Sequence[Reference]) -> str:
    """Identity of a schema under a subject: its normal form and the versions it references.

    >>> s = parse_schema('"string"')
    >>> fingerprint(s, []) == s.fingerprint
    True
    """
    if not references:
        return schema.fingerprint
    refs = json.dumps([r.to_json() for r in references], sort_keys=True)
    return hashlib.sha256(f"{schema.text}|{refs}".encode()).hexdigest()


_INT_RANGE = {"int": 2**31, "long": 2**63}


def _valid_value(schema: avro.schema.Schema, value: object) -> bool:
    """Whether ``value`` (JSON) is a valid default for ``schema``, as Avro's Java
    parser with default validation (what Confluent's registry runs) decides."""
    kind = schema.type
    if kind == "null":
        return value is None
    if kind == "boolean":
        return isinstance(value, bool)
    if kind in _INT_RANGE:
        bound = _INT_RANGE[kind]
        return isinstance(value, int) and not isinstance(value, bool) and -bound <= value < bound
    if kind in ("float", "double"):
        return (isinstance(value, int | float) and not isinstance(value, bool)) or (
            isinstance(value, str) and value in ("NaN", "Infinity", "-Infinity")
        )
    if kind in ("string", "bytes", "fixed"):
        return isinstance(value, str)
    if kind == "enum":
        return isinstance(value, str) and value in schema.symbols  # type: ignore[attr-defined]
    if kind == "array":
        items = schema.items  # type: ignore[attr-defined]
        return isinstance(value, list) and all(_valid_value(items, v) for v in value)
    if kind == "map":
        values = schema.values  # type: ignore[attr-defined]
        return isinstance(value, dict) and all(_valid_value(values, v) for v in value.values())
    if kind == "union":  # Avro 1.12: the default may match any branch
        return any(_valid_value(b, value) for b in schema.schemas)  # type: ignore[attr-defined]
    if kind in ("record", "error"):
        if not isinstance(value, dict):
            return False
        for f in schema.fields:  # type: ignore[attr-defined]
            if f.name in value:
                if not _valid_value(f.type, value[f.name]):
                    return False
            elif not f.has_default:
                return False
        return True
    return True


def _default_problem(schema: avro.schema.Schema, seen: set[int]) -> str | None:
    if id(schema) in seen:
        return None
    seen.add(id(schema))
    children: list[avro.schema.Schema] = []
    if schema.type in ("record", "error"):
        for f in schema.fields:  # type: ignore[attr-defined]
            if f.has_default and not _valid_value(f.type, f.default):
                return (
                    f"the default of field {schema.fullname}.{f.name} ({f.default!r}) "  # type: ignore[attr-defined]
                    f"is not a {_type_name(f.type)}"
                )
            children.append(f.type)
    elif schema.type == "array":
        children.append(schema.items)  # type: ignore[attr-defined]
    elif schema.type == "map":
        children.append(schema.values)  # type: ignore[attr-defined]
    elif schema.type == "union":
        children.extend(schema.schemas)  # type: ignore[attr-defined]
    for child in children:
        problem = _default_problem(child, seen)
        if problem:
            return problem
    return None


def _type_name(schema: avro.schema.Schema) -> str:
    if schema.type == "union":
        return " or ".join(_type_name(b) for b in schema.schemas)  # type: ignore[attr-defined]
    return str(getattr(schema, "fullname", None) or schema.type)


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
