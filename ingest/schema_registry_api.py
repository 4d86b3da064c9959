"""The Confluent Schema Registry REST API over :class:`lake.SchemaStore`.

Enough of the API that ``confluent_kafka.schema_registry.SchemaRegistryClient``
with ``AvroSerializer``/``AvroDeserializer`` work unmodified: register, look up,
get by id, subjects and versions, latest, compatibility tests, config, soft
delete. Errors are the registry's JSON bodies (``{"error_code", "message"}``):
404 with 40401/40402/40403, 409 for an incompatible schema, 422 (42201 invalid
schema, 42202 invalid version, 42203 invalid compatibility level). A refused
request writes nothing. Served by Starlette on uvicorn, on loopback unless told
otherwise.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ingest.broker import free_port
from lake import (
    COMPATIBILITY_LEVELS,
    IncompatibleSchema,
    InvalidSchema,
    InvalidTableName,
    SchemaNotFound,
    SchemaStore,
)

__all__ = ["SchemaRegistryServer", "create_app"]

log = logging.getLogger(__name__)
MEDIA_TYPE = "application/vnd.schemaregistry.v1+json"


class _ApiError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        self.status, self.code, self.message = status, code, message


def _json(body: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE)


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"{}")
    except json.JSONDecodeError as e:
        raise _ApiError(422, 42201, f"request body is not JSON: {e}") from None
    if not isinstance(body, dict):
        raise _ApiError(422, 42201, "request body must be a JSON object")
    return body


def _schema_of(body: dict[str, Any]) -> str:
    schema = body.get("schema")
    if not isinstance(schema, str):
        raise _ApiError(422, 42201, 'the body needs a "schema" string')
    if body.get("schemaType", "AVRO").upper() != "AVRO":
        raise _ApiError(422, 42201, f"schema type {body['schemaType']} is not supported; use AVRO")
    if body.get("references"):
        raise _ApiError(422, 42201, "schema references are not supported")
    return schema


def _version(raw: str) -> int | str:
    if raw == "latest" or raw == "-1":
        return "latest"
    try:
        v = int(raw)
    except ValueError:
        v = 0
    if v < 1:
        raise _ApiError(422, 42202, f"version {raw!r} is not a positive integer or 'latest'")
    return v


def _not_found(e: SchemaNotFound) -> _ApiError:
    what = e.what
    code = 40402 if what.startswith("version") else 40401 if what.startswith("subject") else 40403
    return _ApiError(404, code, str(e).replace(" not found", " not found."))


def create_app(store: SchemaStore) -> Starlette:
    """The REST API as an ASGI app over ``store``."""

    def entry(subject: str, version: int | str) -> dict[str, Any]:
        r = store.get(subject, version)  # type: ignore[arg-type]
        return {"subject": r.subject, "version": r.version, "id": r.id, "schema": r.schema}

    async def register(request: Request) -> Response:
        body = await _body(request)
        r = store.register(request.path_params["subject"], _schema_of(body))
        return _json({"id": r.id, "subject": r.subject, "version": r.version, "schema": r.schema})

    async def lookup(request: Request) -> Response:
        body = await _body(request)
        subject = request.path_params["subject"]
        store.versions(subject)  # 40401 before 40403
        r = store.lookup(subject, _schema_of(body))
        return _json({"subject": r.subject, "version": r.version, "id": r.id, "schema": r.schema})

    async def schema_by_id(request: Request) -> Response:
        return _json({"schema": store.by_id(int(request.path_params["id"]))})

    async def schema_by_id_raw(request: Request) -> Response:
        return Response(store.by_id(int(request.path_params["id"])), media_type=MEDIA_TYPE)

    async def id_versions(request: Request) -> Response:
        schema_id = int(request.path_params["id"])
        store.by_id(schema_id)
        return _json([{"subject": s, "version": v} for s, v in store.subjects_of(schema_id)])

    async def subjects(request: Request) -> Response:
        deleted = request.query_params.get("deleted", "false").lower() == "true"
        return _json(store.subjects(include_deleted=deleted))

    async def versions(request: Request) -> Response:
        deleted = request.query_params.get("deleted", "false").lower() == "true"
        return _json(store.versions(request.path_params["subject"], include_deleted=deleted))

    async def version(request: Request) -> Response:
        return _json(
            entry(request.path_params["subject"], _version(request.path_params["version"]))
        )

    async def version_schema(request: Request) -> Response:
        e = entry(request.path_params["subject"], _version(request.path_params["version"]))
        return Response(e["schema"], media_type=MEDIA_TYPE)

    async def compatibility(request: Request) -> Response:
        body = await _body(request)
        subject = request.path_params["subject"]
        raw = request.path_params.get("version")
        v = _version(raw) if raw is not None else None
        try:
            problems = store.problems(subject, _schema_of(body), v)  # type: ignore[arg-type]
        except SchemaNotFound:
            if raw is not None:
                raise
            problems = []  # no versions yet: anything is compatible
        out: dict[str, Any] = {"is_compatible": not problems}
        if request.query_params.get("verbose", "false").lower() == "true":
            out["messages"] = problems
        return _json(out)

    async def get_config(request: Request) -> Response:
        subject = request.path_params.get("subject")
        default = request.query_params.get("defaultToGlobal", "false").lower() == "true"
        level = store.compatibility(subject, fallback=subject is None or default)
        if level is None:
            raise _ApiError(
                404,
                40408,
                f"subject {subject!r} does not have subject-level compatibility configured.",
            )
        return _json({"compatibilityLevel": level})

    async def put_config(request: Request) -> Response:
        body = await _body(request)
        level = str(body.get("compatibility", "")).upper()
        if level not in COMPATIBILITY_LEVELS:
            raise _ApiError(
                422,
                42203,
                f"invalid compatibility level {level!r}; valid: {', '.join(COMPATIBILITY_LEVELS)}",
            )
        return _json(
            {"compatibility": store.set_compatibility(level, request.path_params.get("subject"))}
        )

    async def delete_subject(request: Request) -> Response:
        return _json(store.delete(request.path_params["subject"]))

    async def delete_version(request: Request) -> Response:
        subject = request.path_params["subject"]
        v = _version(request.path_params["version"])
        if v == "latest":
            v = store.get(subject).version
        return _json(store.delete(subject, int(v))[0])

    async def root(_: Request) -> Response:
        return _json({})

    def handled(fn: Any) -> Any:
        async def wrapper(request: Request) -> Response:
            try:
                return await fn(request)
            except _ApiError as e:
                return _json({"error_code": e.code, "message": e.message}, e.status)
            except SchemaNotFound as e:
                err = _not_found(e)
                return _json({"error_code": err.code, "message": err.message}, err.status)
            except IncompatibleSchema as e:
                return _json({"error_code": 409, "message": str(e)}, 409)
            except (InvalidSchema, InvalidTableName) as e:
                return _json({"error_code": 42201, "message": str(e)}, 422)
            except ValueError as e:
                return _json({"error_code": 42201, "message": str(e)}, 422)
            except Exception as e:  # never a bare 500 page
                log.exception("schema registry request failed")
                return _json({"error_code": 50001, "message": f"internal error: {e}"}, 500)

        return wrapper

    s, sv = "/subjects/{subject}", "/subjects/{subject}/versions/{version}"
    routes = [
        Route("/", handled(root)),
        Route("/subjects", handled(subjects)),
        Route(s, handled(lookup), methods=["POST"]),
        Route(s, handled(delete_subject), methods=["DELETE"]),
        Route(f"{s}/versions", handled(versions), methods=["GET"]),
        Route(f"{s}/versions", handled(register), methods=["POST"]),
        Route(sv, handled(version), methods=["GET"]),
        Route(sv, handled(delete_version), methods=["DELETE"]),
        Route(f"{sv}/schema", handled(version_schema)),
        Route("/schemas/ids/{id:int}", handled(schema_by_id)),
        Route("/schemas/ids/{id:int}/schema", handled(schema_by_id_raw)),
        Route("/schemas/ids/{id:int}/versions", handled(id_versions)),
        Route(
            "/compatibility/subjects/{subject}/versions", handled(compatibility), methods=["POST"]
        ),
        Route("/compatibility" + sv, handled(compatibility), methods=["POST"]),
        Route("/config", handled(get_config), methods=["GET"]),
        Route("/config", handled(put_config), methods=["PUT"]),
        Route("/config/{subject}", handled(get_config), methods=["GET"]),
        Route("/config/{subject}", handled(put_config), methods=["PUT"]),
    ]

    async def no_route(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 404)
        return _json(
            {
                "error_code": status,
                "message": f"no such endpoint: {request.method} {request.url.path}",
            },
            status,
        )

    return Starlette(routes=routes, exception_handlers={404: no_route, 405: no_route})


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
