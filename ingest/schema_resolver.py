"""Writer schemas by id, for decoding Confluent-framed records.

With eventlake's own registry the lake already holds every schema. With an
external Confluent-compatible registry (Confluent, Karapace, Redpanda,
Apicurio), each schema is fetched by id once and copied into
``registry/schemas`` with its id, subject and version, so a replay never
depends on the external registry still existing.
"""

from __future__ import annotations

import logging

import httpx

from lake import SchemaNotFound, SchemaStore

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
            text = self.store.by_id(schema_id)
        except SchemaNotFound:
            if self._http is None:
                raise
            text = self._fetch(schema_id)
        self._cache[schema_id] = text
        return text

    def forget(self) -> None:
        """Drop the cache (after a schema was registered that earlier was missing)."""
        self._cache.clear()

    def _fetch(self, schema_id: int) -> str:
        assert self._http is not None and self.external_url is not None
        url = f"{self.external_url}/schemas/ids/{schema_id}"
        try:
            r = self._http.get(url)
        except httpx.HTTPError as e:
            raise SchemaNotFound(
                f"schema id {schema_id} (registry {self.external_url} unreachable: {e})"
            ) from None
        if r.status_code == 404:
            raise SchemaNotFound(f"schema id {schema_id} (not in {self.external_url})")
        r.raise_for_status()
        body = r.json()
        if body.get("schemaType", "AVRO") != "AVRO":
            raise SchemaNotFound(f"schema id {schema_id} is {body['schemaType']}, not Avro")
        text: str = body["schema"]
        uses = self._http.get(f"{url}/versions")
        pairs = uses.json() if uses.status_code == 200 else []
        for use in pairs or [{"subject": f"external-id-{schema_id}", "version": 1}]:
            self.store.copy(
                schema_id, use["subject"], int(use["version"]), text, source=self.external_url
            )
        log.info(
            "copied schema id %d from %s into the lake (%s)",
            schema_id,
            self.external_url,
            ", ".join(f"{u['subject']} v{u['version']}" for u in pairs) or "no subject",
        )
        return self.store.by_id(schema_id)
