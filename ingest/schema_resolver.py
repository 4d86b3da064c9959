"""Writer schemas by id, for decoding Confluent-framed records.

With eventlake's own registry the lake already holds every schema. With an
external Confluent-compatible registry (Confluent, Karapace, Redpanda,
Apicurio), each schema is fetched by id once and copied into
``registry/schemas`` with its id, subject, version and the versions it
references, so a replay never depends on the external registry still existing.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

import httpx

from lake import Reference, SchemaNotFound, SchemaStore

__all__ = ["SchemaResolver"]

log = logging.getLogger(__name__)


class SchemaResolver:
    """Resolves schema ids to schema text, caching what it has seen.

    >>> import tempfile
    >>> from lake import Lake
    >>> store = SchemaStore.open(Lake(tempfile.mkdtemp()))
    >>> sid = store.register("t-value", '{"type": "string"}').id
    >>> SchemaResolver(store).schema(sid)
    '"string"'
    """

    def __init__(
        self, store: SchemaStore, external_url: str | None = None, *, timeout_s: float = 10.0
    ) -> None:
        self.store = store
        self.external_url = external_url.rstrip("/") if external_url else None
        self._http = httpx.Client(timeout=timeout_s) if external_url else None
        self._cache: dict[int, str] = {}

    def schema(self, schema_id: int) -> str:
        """The writer schema with ``schema_id``; raises :class:`SchemaNotFound`."""
        cached = self._cache.get(schema_id)
        if cached is not None:
            return cached
        try:
            text = self.store.resolved(schema_id)
        except SchemaNotFound:
            if self._http is None:
                raise
            text = self._fetch(schema_id)
        self._cache[schema_id] = text
        return text

    def forget(self) -> None:
        """Drop the cache (after a schema was registered that earlier was missing)."""
        self._cache.clear()

    def _get(self, path: str, what: str) -> dict[str, Any]:
        assert self._http is not None and self.external_url is not None
        try:
            r = self._http.get(f"{self.external_url}{path}")
        except httpx.HTTPError as e:
            raise SchemaNotFound(
                f"{what} (registry {self.external_url} unreachable: {e})"
            ) from None
        if r.status_code == 404:
            raise SchemaNotFound(f"{what} (not in {self.external_url})")
        r.raise_for_status()
        body: dict[str, Any] = r.json()
        if body.get("schemaType", "AVRO") != "AVRO":
            raise SchemaNotFound(f"{what} is {body['schemaType']}, not Avro")
        return body

    def _references(self, body: dict[str, Any]) -> list[Reference]:
        """Copy the versions ``body`` references (and theirs) first; return the references."""
        refs = [
            Reference(r["name"], r["subject"], int(r["version"]))
            for r in body.get("references") or []
        ]
        for ref in refs:
            try:
                self.store.get(ref.subject, ref.version, include_deleted=True)
                continue
            except SchemaNotFound:
                pass
            path = f"/subjects/{quote(ref.subject, safe='')}/versions/{ref.version}"
            used = self._get(path, f"{ref.subject} version {ref.version}")
            self.store.copy(
                int(used["id"]),
                ref.subject,
                ref.version,
                used["schema"],
                source=str(self.external_url),
                references=self._references(used),
            )
        return refs

    def _fetch(self, schema_id: int) -> str:
        assert self._http is not None and self.external_url is not None
        url = f"/schemas/ids/{schema_id}"
        body = self._get(url, f"schema id {schema_id}")
        text: str = body["schema"]
        refs = self._references(body)
        uses = self._http.get(f"{self.external_url}{url}/versions")
        pairs = uses.json() if uses.status_code == 200 else []
        for use in pairs or [{"subject": f"external-id-{schema_id}", "version": 1}]:
            self.store.copy(
                schema_id,
                use["subject"],
                int(use["version"]),
                text,
                source=self.external_url,
                references=refs,
            )
        log.info(
            "copied schema id %d from %s into the lake (%s)",
            schema_id,
            self.external_url,
            ", ".join(f"{u['subject']} v{u['version']}" for u in pairs) or "no subject",
        )
        return self.store.resolved(schema_id)
