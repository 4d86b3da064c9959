"""The Confluent Schema Registry REST API over :class:`lake.SchemaStore`.

Confluent's API reference is the specification: ``SchemaRegistryClient`` with
``AvroSerializer``/``AvroDeserializer`` (schema references included) work
unmodified, and status codes, error codes and messages are Confluent's:
40401 subject, 40402 version, 40403 schema not found; 40404/40406 already
soft-deleted, 40405/40407 not soft-deleted before a permanent delete; 40408 no
subject-level compatibility; 409 incompatible; 42201 invalid schema,
42202 invalid version, 42203 invalid compatibility level, 42206 referenced,
42208 invalid subject. A refused request writes nothing. Schemas come back as
they were registered. ``GET /openapi.json`` describes the API.

Served by uvicorn, on loopback unless told otherwise.
"""

from __future__ import annotations

import logging
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from ingest.broker import free_port
from ingest.schema_registry_http import (
    ApiError,
    Call,
    Param,
    Route,
    body_of,
    error_response,
    match,
    negotiate,
    query_of,
)
from ingest.schema_registry_openapi import openapi
from lake import (
    COMPATIBILITY_LEVELS,
    DeleteRefused,
    IncompatibleSchema,
    InvalidSchema,
    InvalidSubject,
    Reference,
    RegisteredSchema,
    SchemaNotFound,
    SchemaStore,
    SubjectNotFound,
    VersionNotFound,
)

__all__ = ["SchemaRegistryServer", "create_app"]

log = logging.getLogger(__name__)
_INVALID_LEVEL = (
    "Invalid compatibility level. Valid values are none, backward, forward, full, "
    "backward_transitive, forward_transitive, and full_transitive"
)
_MAX_VERSION = 2**31 - 1


def _version(raw: str) -> int | str:
    if raw in ("latest", "-1"):
        return "latest"
    try:
        v = int(raw)
    except ValueError:
        v = 0
    if not 1 <= v <= _MAX_VERSION:
        raise ApiError(
            422,
            42202,
            f"The specified version '{raw}' is not a valid version id. "
            'Allowed values are between [1, 2^31-1] and the string "latest"',
        )
    return v


def _schema_id(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ApiError(404, 40403, f"Schema {raw} not found") from None


def _request(body: Any) -> tuple[str, list[Reference]]:
    """Schema text and references of a register/lookup/compatibility body."""
    if not isinstance(body, dict):
        raise ApiError(422, 422, "the request body must be a JSON object")
    schema = body.get("schema")
    if not isinstance(schema, str) or not schema.strip():
        raise ApiError(422, 42201, "Empty schema")
    kind = body.get("schemaType") or "AVRO"
    if not isinstance(kind, str) or kind.upper() != "AVRO":
        raise ApiError(422, 42201, f"Invalid schema type {kind}; this registry stores AVRO")
    refs = body.get("references") or []
    if not isinstance(refs, list):
        raise ApiError(422, 422, "references must be a list of {name, subject, version}")
    out = []
    for r in refs:
        ok = isinstance(r, dict) and isinstance(r.get("name"), str)
        ok = ok and isinstance(r.get("subject"), str) and type(r.get("version")) is int
        if not ok:
            raise ApiError(422, 422, "each reference needs name and subject strings and a version")
        out.append(Reference(r["name"], r["subject"], r["version"]))
    return schema, out


def _entity(r: RegisteredSchema) -> dict[str, Any]:
    """A version as Confluent's ``Schema`` entity (references only when there are some)."""
    out: dict[str, Any] = {"subject": r.subject, "version": r.version, "id": r.id}
    if r.references:
        out["references"] = [x.to_json() for x in r.references]
    out["schema"] = r.schema
    return out


def _page(items: list[Any], query: dict[str, Any]) -> list[Any]:
    offset, limit = max(query.get("offset", 0), 0), query.get("limit", -1)
    return items[offset:] if limit < 0 else items[offset : offset + limit]


def _to_api_error(e: Exception) -> ApiError:
    if isinstance(e, ApiError):
        return e
    if isinstance(e, SubjectNotFound):
        return ApiError(404, 40401, f"Subject '{e.subject}' not found.")
    if isinstance(e, VersionNotFound):
        return ApiError(404, 40402, f"Version {e.version} not found.")
    if isinstance(e, SchemaNotFound):
        what = e.what.removeprefix("schema id ")
        return ApiError(
            404, 40403, f"Schema {what} not found" if what.isdigit() else "Schema not found"
        )
    if isinstance(e, DeleteRefused):
        return _delete_refused(e)
    if isinstance(e, InvalidSubject):
        return ApiError(422, 42208, f"The specified subject '{e.subject}' is not a valid.")
    if isinstance(e, IncompatibleSchema):
        return ApiError(  # 409 as the API reference and Confluent's clients' tests have it
            409,
            409,
            "Schema being registered is incompatible with an earlier schema for subject "
            f'"{e.subject}", details: {e.problems}',
        )
    if isinstance(e, InvalidSchema):
        return ApiError(422, 42201, f"Invalid schema: {e.reason}")
    raise e


def _delete_refused(e: DeleteRefused) -> ApiError:
    if e.reason == "referenced":
        key = f"{{magic=1,keytype=SCHEMA,subject={e.subject},version={e.version}}}"
        return ApiError(422, 42206, f"One or more references exist to the schema {key}.")
    soft = e.reason == "soft_deleted"
    if e.version is None:
        if soft:
            return ApiError(
                404,
                40404,
                f"Subject '{e.subject}' was soft deleted.Set permanent=true to delete permanently",
            )
        return ApiError(
            404,
            40405,
            f"Subject '{e.subject}' was not deleted first before being permanently deleted",
        )
    if soft:
        return ApiError(
            404,
            40406,
            f"Subject '{e.subject}' Version {e.version} was soft deleted."
            "Set permanent=true to delete permanently",
        )
    return ApiError(
        404,
        40407,
        f"Subject '{e.subject}' Version {e.version} was not deleted first before being "
        "permanently deleted",
    )


class _Api:
    """The handlers, each ``(Call) -> JSON-able``, over one store."""

    def __init__(self, store: SchemaStore) -> None:
        self.store = store

    def root(self, _: Call) -> Any:
        return {}

    def subjects(self, c: Call) -> Any:
        q = c.query
        found = self.store.subjects(
            include_deleted=q["deleted"], deleted_only=q["deletedOnly"], prefix=q["subjectPrefix"]
        )
        return _page(found, q)

    def versions(self, c: Call) -> Any:
        q = c.query
        found = self.store.versions(
            c.path["subject"], include_deleted=q["deleted"], deleted_only=q["deletedOnly"]
        )
        return _page(found, q)

    def register(self, c: Call) -> Any:
        schema, refs = _request(c.body)
        r = self.store.register(c.path["subject"], schema, refs)
        return {"id": r.id, **_entity(r)}

    def lookup(self, c: Call) -> Any:
        schema, refs = _request(c.body)
        r = self.store.lookup(c.path["subject"], schema, refs, include_deleted=c.query["deleted"])
        return _entity(r)

    def version(self, c: Call) -> Any:
        v = _version(c.path["version"])
        return _entity(self.store.get(c.path["subject"], v, include_deleted=c.query["deleted"]))  # type: ignore[arg-type]

    def version_schema(self, c: Call) -> Any:
        return self.version(c)["schema"]

    def referenced_by(self, c: Call) -> Any:
        r = self.store.get(
            c.path["subject"],
            _version(c.path["version"]),  # type: ignore[arg-type]
            include_deleted=c.query["deleted"],
        )
        return _page(self.store.referenced_by(r.subject, r.version), c.query)

    def delete_subject(self, c: Call) -> Any:
        return self.store.delete(c.path["subject"], permanent=c.query["permanent"])

    def delete_version(self, c: Call) -> Any:
        v = _version(c.path["version"])
        return self.store.delete(c.path["subject"], v, permanent=c.query["permanent"])[0]  # type: ignore[arg-type]

    def schema_by_id(self, c: Call) -> Any:
        r = self.store.schema(_schema_id(c.path["id"]))
        out: dict[str, Any] = {"schema": r.schema}
        if r.references:
            out["references"] = [x.to_json() for x in r.references]
        return out

    def schema_by_id_raw(self, c: Call) -> Any:
        return self.store.by_id(_schema_id(c.path["id"]))

    def id_versions(self, c: Call) -> Any:
        schema_id = _schema_id(c.path["id"])
        pairs = self.store.subjects_of(schema_id, include_deleted=c.query["deleted"])
        if c.query["subject"]:
            pairs = [p for p in pairs if p[0] == c.query["subject"]]
        if not pairs:
            raise SchemaNotFound("schema")
        return _page([{"subject": s, "version": v} for s, v in pairs], c.query)

    def id_subjects(self, c: Call) -> Any:
        pairs = self.id_versions(c)
        return sorted({p["subject"] for p in pairs})

    def schemas(self, c: Call) -> Any:
        q = c.query
        rows = [
            r
            for r in self.store.listing(include_deleted=q["deleted"])
            if r.subject.startswith(q["subjectPrefix"])
        ]
        if q["latestOnly"]:  # the last version of each subject
            rows = list({r.subject: r for r in rows}.values())
        return _page([_entity(r) for r in rows], q)

    def schema_types(self, _: Call) -> Any:
        return ["AVRO"]

    def compatibility(self, c: Call) -> Any:
        schema, refs = _request(c.body)
        raw = c.path.get("version")
        v = _version(raw) if raw is not None else None
        try:
            problems = self.store.check(c.path["subject"], schema, refs, v)  # type: ignore[arg-type]
        except SubjectNotFound:
            if raw is not None:
                raise
            problems = []  # no versions yet: anything is compatible
        out: dict[str, Any] = {"is_compatible": not problems}
        if c.query["verbose"]:
            out["messages"] = problems
        return out

    def get_config(self, c: Call) -> Any:
        subject = c.path.get("subject")
        level = self.store.compatibility(
            subject, fallback=subject is None or c.query["defaultToGlobal"]
        )
        if level is None:
            raise ApiError(
                404,
                40408,
                f"Subject '{subject}' does not have subject-level compatibility configured",
            )
        return {"compatibilityLevel": level}

    def put_config(self, c: Call) -> Any:
        body = c.body if isinstance(c.body, dict) else {}
        raw = body.get("compatibility") or body.get("compatibilityLevel")
        level = raw.upper() if isinstance(raw, str) else ""
        if level not in COMPATIBILITY_LEVELS:
            raise ApiError(422, 42203, _INVALID_LEVEL)
        return {"compatibility": self.store.set_compatibility(level, c.path.get("subject"))}

    def delete_config(self, c: Call) -> Any:
        subject = c.path.get("subject")
        old = self.store.delete_compatibility(subject)
        if old is None:
            raise SubjectNotFound(str(subject))
        return {"compatibilityLevel": old}


_PAGE = (Param("offset", int, 0), Param("limit", int, -1))
_DELETED = Param("deleted", doc="include soft-deleted versions")
_DELETED_ONLY = Param("deletedOnly", aliases=("deleted_only",), doc="only soft-deleted ones")
_PERMANENT = Param("permanent", doc="hard delete (after a soft delete)")
_PREFIX = Param("subjectPrefix", str, "")
_INTS = {"type": "array", "items": {"type": "integer"}}
_STRINGS = {"type": "array", "items": {"type": "string"}}
_SCHEMA = {"$ref": "#/components/schemas/Schema"}
_S, _SV = "/subjects/{subject}", "/subjects/{subject}/versions/{version}"
_CS = "/compatibility/subjects/{subject}/versions"


def routes(api: _Api) -> list[Route]:
    """Every endpoint of the registry."""
    cfg = {"$ref": "#/components/schemas/Config"}
    verdict = {"$ref": "#/components/schemas/Compatibility"}
    return [
        Route("GET", "/", api.root, "Root", returns={"type": "object"}),
        Route(
            "GET",
            "/subjects",
            api.subjects,
            "List subjects",
            (_PREFIX, _DELETED, _DELETED_ONLY, *_PAGE),
            returns=_STRINGS,
        ),
        Route(
            "POST",
            _S,
            api.lookup,
            "Look up a schema under a subject",
            (_DELETED, Param("normalize")),
            "RegisterSchemaRequest",
            _SCHEMA,
        ),
        Route("DELETE", _S, api.delete_subject, "Delete a subject", (_PERMANENT,), returns=_INTS),
        Route(
            "GET",
            f"{_S}/versions",
            api.versions,
            "List versions",
            (_DELETED, _DELETED_ONLY, *_PAGE),
            returns=_INTS,
        ),
        Route(
            "POST",
            f"{_S}/versions",
            api.register,
            "Register a schema",
            (Param("normalize"),),
            "RegisterSchemaRequest",
            _SCHEMA,
        ),
        Route("GET", _SV, api.version, "Get a version", (_DELETED,), returns=_SCHEMA),
        Route(
            "DELETE",
            _SV,
            api.delete_version,
            "Delete a version",
            (_PERMANENT,),
            returns={"type": "integer"},
        ),
        Route(
            "GET",
            f"{_SV}/schema",
            api.version_schema,
            "Get a version's schema text",
            (_DELETED,),
            raw=True,
        ),
        Route(
            "GET",
            f"{_SV}/referencedby",
            api.referenced_by,
            "Ids of schemas referencing a version",
            (_DELETED, *_PAGE),
            returns=_INTS,
        ),
        Route(
            "GET",
            "/schemas",
            api.schemas,
            "List schemas",
            (_PREFIX, _DELETED, Param("latestOnly"), *_PAGE),
            returns={"type": "array", "items": _SCHEMA},
        ),
        Route("GET", "/schemas/types", api.schema_types, "Schema types", returns=_STRINGS),
        Route(
            "GET",
            "/schemas/ids/{id}",
            api.schema_by_id,
            "Get a schema by id",
            (Param("subject", str, ""),),
            returns={"$ref": "#/components/schemas/SchemaString"},
        ),
        Route(
            "GET",
            "/schemas/ids/{id}/schema",
            api.schema_by_id_raw,
            "Get a schema's text by id",
            (Param("subject", str, ""),),
            raw=True,
        ),
        Route(
            "GET",
            "/schemas/ids/{id}/versions",
            api.id_versions,
            "Subject-versions using an id",
            (Param("subject", str, ""), _DELETED, *_PAGE),
            returns={"type": "array", "items": {"$ref": "#/components/schemas/SubjectVersion"}},
        ),
        Route(
            "GET",
            "/schemas/ids/{id}/subjects",
            api.id_subjects,
            "Subjects using an id",
            (Param("subject", str, ""), _DELETED, *_PAGE),
            returns=_STRINGS,
        ),
        Route(
            "POST",
            _CS,
            api.compatibility,
            "Test against the subject's versions",
            (Param("verbose"),),
            "RegisterSchemaRequest",
            verdict,
        ),
        Route(
            "POST",
            f"/compatibility{_SV}",
            api.compatibility,
            "Test against one version",
            (Param("verbose"),),
            "RegisterSchemaRequest",
            verdict,
        ),
        Route(
            "GET",
            "/config",
            api.get_config,
            "Global compatibility",
            (Param("defaultToGlobal"),),
            returns=cfg,
        ),
        Route(
            "PUT",
            "/config",
            api.put_config,
            "Set global compatibility",
            body="ConfigUpdateRequest",
            returns=cfg,
        ),
        Route("DELETE", "/config", api.delete_config, "Reset global compatibility", returns=cfg),
        Route(
            "GET",
            "/config/{subject}",
            api.get_config,
            "Subject compatibility",
            (Param("defaultToGlobal"),),
            returns=cfg,
        ),
        Route(
            "PUT",
            "/config/{subject}",
            api.put_config,
            "Set subject compatibility",
            body="ConfigUpdateRequest",
            returns=cfg,
        ),
        Route(
            "DELETE",
            "/config/{subject}",
            api.delete_config,
            "Remove subject compatibility",
            returns=cfg,
        ),
    ]


class RegistryApp:
    """The REST API as an ASGI app over a :class:`SchemaStore`."""

    def __init__(self, store: SchemaStore) -> None:
        self.routes = routes(_Api(store))
        self.document = openapi(self.routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        response = await self.respond(Request(scope, receive))
        await response(scope, receive, send)

    async def respond(self, request: Request) -> Response:
        """Answer one request; every failure becomes Confluent's error body."""
        media = "application/vnd.schemaregistry.v1+json"
        try:
            media = negotiate(request)
            if request.url.path == "/openapi.json" and request.method == "GET":
                return JSONResponse(self.document)
            route, path = match(self.routes, request)
            body = await body_of(request) if route.body else None
            call = Call(path, query_of(route, request), body)
            result = await run_in_threadpool(self._run, route, call)
            if route.raw:
                return Response(result, media_type=media)
            return JSONResponse(result, media_type=media)
        except ApiError as e:
            return error_response(e, media)
        except Exception:  # never a bare 500 page
            log.exception("schema registry request failed: %s %s", request.method, request.url)
            return error_response(ApiError(500, 50001, "Error in the backend data store"), media)

    @staticmethod
    def _run(route: Route, call: Call) -> Any:
        try:
            return route.handler(call)
        except ApiError:
            raise
        except (
            SchemaNotFound,
            DeleteRefused,
            InvalidSubject,
            IncompatibleSchema,
            InvalidSchema,
        ) as e:
            raise _to_api_error(e) from None
        except ValueError as e:
            raise ApiError(422, 422, str(e)) from None


def create_app(store: SchemaStore) -> RegistryApp:
    """The REST API as an ASGI app over ``store``."""
    return RegistryApp(store)


class SchemaRegistryServer:
    """The REST API on ``host:port`` (a free loopback port by default), in a thread.

    >>> with SchemaRegistryServer(SchemaStore.open(Lake("./lake"))) as server:  # doctest: +SKIP
    ...     print(server.url)
    http://127.0.0.1:43125
    """

    def __init__(
        self, store: SchemaStore, *, host: str = "127.0.0.1", port: int | None = None
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        config = uvicorn.Config(
            create_app(store), host=host, port=self.port, log_level="warning", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL clients use."""
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 10.0) -> SchemaRegistryServer:
        """Start serving and wait until the socket accepts requests."""
        self._thread = threading.Thread(
            target=self._server.run, name="schema-registry", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the schema registry did not start on {self.url}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        """Stop serving; idempotent."""
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def __enter__(self) -> SchemaRegistryServer:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
