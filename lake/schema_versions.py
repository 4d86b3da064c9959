"""Versions of subjects as the registry holds them, and the references between them.

Pure functions over the rows of ``registry/schemas`` (a list of
:class:`RegisteredSchema`); :class:`lake.SchemaStore` reads and writes the rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from lake.errors import InvalidSchema, InvalidSubject
from lake.schemas import Reference

__all__ = ["RegisteredSchema", "named_texts", "pin_references", "validate_subject", "versions_of"]


@dataclass(frozen=True)
class RegisteredSchema:
    """One version of a subject; ``schema`` is the text as it was registered."""

    id: int
    subject: str
    version: int
    schema: str
    deleted: bool = False
    references: tuple[Reference, ...] = ()
    fingerprint: str = field(default="", compare=False, repr=False)
    purged: bool = field(default=False, compare=False, repr=False)


def validate_subject(subject: str) -> str:
    """Return ``subject`` if Confluent's registry accepts it (no control characters).

    >>> validate_subject("any/name: even {this} *")
    'any/name: even {this} *'
    >>> validate_subject("bad\\nname")
    Traceback (most recent call last):
    ...
    lake.errors.InvalidSubject: subject 'bad\\nname' cannot be registered: ...
    """
    if not isinstance(subject, str) or any(
        ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in subject
    ):
        raise InvalidSubject(str(subject))
    return subject


def versions_of(
    rows: list[RegisteredSchema], subject: str, *, deleted: bool = False
) -> list[RegisteredSchema]:
    """``subject``'s versions, oldest first (soft-deleted ones too with ``deleted``).

    >>> rows = [RegisteredSchema(1, "s", 2, "{}"), RegisteredSchema(1, "s", 1, "{}", deleted=True)]
    >>> [r.version for r in versions_of(rows, "s")], len(versions_of(rows, "s", deleted=True))
    ([2], 2)
    """
    return sorted(
        (r for r in rows if r.subject == subject and (deleted or not r.deleted)),
        key=lambda r: r.version,
    )


def pin_references(
    rows: list[RegisteredSchema], refs: Sequence[Reference]
) -> tuple[Reference, ...]:
    """References with ``-1`` (latest) pinned to the version it names now; each must exist."""
    out = []
    for ref in refs:
        mine = versions_of(rows, ref.subject, deleted=ref.version != -1)
        chosen = mine[-1:] if ref.version == -1 else [r for r in mine if r.version == ref.version]
        if not chosen:
            raise InvalidSchema(
                f"reference {ref.name!r} names version {ref.version} of subject "
                f"{ref.subject!r}, which does not exist; register it first"
            )
        out.append(Reference(ref.name, ref.subject, chosen[0].version))
    return tuple(out)


def named_texts(rows: list[RegisteredSchema], refs: Sequence[Reference]) -> list[str]:
    """The texts a schema with ``refs`` needs, dependencies first, each once."""
    index = {(r.subject, r.version): r for r in sorted(rows, key=lambda r: not r.purged)}
    out: list[str] = []
    done: set[tuple[str, int]] = set()

    def visit(ref: Reference) -> None:
        key = (ref.subject, ref.version)
        if key in done or key not in index:
            return
        done.add(key)
        for inner in index[key].references:
            visit(inner)
        out.append(index[key].schema)

    for ref in refs:
        visit(ref)
    return out
