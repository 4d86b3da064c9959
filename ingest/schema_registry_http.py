"""The HTTP plumbing of the registry's REST API: routes on raw path segments,
Confluent's content negotiation, typed query parameters, and error bodies.

Routes match the *raw* path split on ``/``, each segment percent-decoded on its
own, so a subject holding ``/`` (``a%2Fb``) is one segment, as in Confluent's
registry. Responses are ``application/vnd.schemaregistry.v1+json`` unless the
``Accept`` header prefers ``application/vnd.schemaregistry+json`` or
``application/json``; any other ``Accept`` is a 406, a request body of another
``Content-Type`` a 415.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

__all__ = [
    "ApiError",
    "Call",
    "Param",
    "Route",
    "error_response",
    "match",
    "negotiate",
]

V1_JSON = "application/vnd.schemaregistry.v1+json"
DEFAULT_JSON = "application/vnd.schemaregistry+json"
JSON = "application/json"
# What the registry produces, with its preference (Confluent weighs plain JSON 0.5).
PRODUCES: tuple[tuple[str, float], ...] = ((V1_JSON, 1.0), (DEFAULT_JSON, 0.9), (JSON, 0.5))
CONSUMES = (V1_JSON, DEFAULT_JSON, JSON, "application/octet-stream")


class ApiError(Exception):
    """An error answered as Confluent's ``{"error_code", "message"}`` body."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class Param:
    """A query parameter: ``kind`` is ``bool``, ``int`` or ``str``."""

    name: str
    kind: type = bool
    default: Any = False
    aliases: tuple[str, ...] = ()
    doc: str = ""


@dataclass(frozen=True)
class Route:
    """One endpoint: ``path`` like ``/subjects/{subject}/versions/{version}``."""

    method: str
    path: str
    handler: Callable[..., Any]
    summary: str
    params: tuple[Param, ...] = ()
    body: str | None = None  # the name of the request body's OpenAPI schema
    returns: dict[str, Any] = field(default_factory=dict)  # the 200 body's JSON schema
    raw: bool = False  # answers the schema text itself, not JSON around it

    @property
    def segments(self) -> list[str]:
        return self.path.strip("/").split("/") if self.path != "/" else []


@dataclass
class Call:
    """What a handler gets: path parameters, typed query parameters, the JSON body."""

    path: dict[str, str]
    query: dict[str, Any]
    body: Any = None


def _segments(request: Request) -> list[str]:
    raw = request.scope.get("raw_path") or request.url.path.encode()
    path = raw.decode("latin-1").split("?", 1)[0]
    return [unquote(s, errors="replace") for s in path.strip("/").split("/")] if path != "/" else []


def match(routes: list[Route], request: Request) -> tuple[Route, dict[str, str]]:
    """The route for ``request`` and its path parameters; 404 or 405 otherwise."""
    segments = _segments(request)
    allowed = []
    for route in routes:
        pattern = route.segments
        if len(pattern) != len(segments):
            continue
        params: dict[str, str] = {}
        for want, got in zip(pattern, segments, strict=True):
            if want.startswith("{"):
                params[want[1:-1]] = got
            elif want != got:
                break
        else:
            if route.method == request.method:
                return route, params
            allowed.append(route.method)
    if allowed:
        raise ApiError(405, 405, "HTTP 405 Method Not Allowed")
    raise ApiError(404, 404, "HTTP 404 Not Found")


def _ranges(header: str) -> list[tuple[str, float]]:
    out = []
    for part in header.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for p in params:
            key, _, value = p.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if media:
            out.append((media.lower(), q))
    return out


def negotiate(request: Request) -> str:
    """The media type to answer with, per ``Accept``; 406 when none fits. Request
    bodies of an unsupported ``Content-Type`` are refused with 415.

    Content negotiation as JAX-RS does it: the client's quality times the
    server's preference picks the type; ``*/*`` and ``application/*`` match.
    """
    if request.method in ("POST", "PUT"):
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype and ctype not in CONSUMES:
            raise ApiError(415, 415, "HTTP 415 Unsupported Media Type")
    accept = request.headers.get("accept", "").strip()
    if not accept:
        return V1_JSON
    best, score = None, 0.0
    for media, q in _ranges(accept):
        for produced, weight in PRODUCES:
            kind = produced.split("/")[0]
            if media in (produced, "*/*", f"{kind}/*") and q * weight > score:
                best, score = produced, q * weight
    if best is None:
        raise ApiError(406, 406, "HTTP 406 Not Acceptable")
    return best


def query_of(route: Route, request: Request) -> dict[str, Any]:
    """The route's query parameters, typed; an unparseable integer is a 422."""
    out: dict[str, Any] = {}
    for p in route.params:
        raw = next(
            (request.query_params[n] for n in (p.name, *p.aliases) if n in request.query_params),
            None,
        )
        if raw is None:
            out[p.name] = p.default
        elif p.kind is bool:
            out[p.name] = raw.strip().lower() == "true"
        elif p.kind is int:
            try:
                out[p.name] = int(raw)
            except ValueError:
                raise ApiError(
                    422, 422, f"query parameter {p.name} must be an integer, not {raw!r}"
                ) from None
        else:
            out[p.name] = raw
    return out


async def body_of(request: Request) -> Any:
    """The JSON request body (None when empty); unparseable JSON is a 400, as Jackson's is."""
    raw = await request.body()
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ApiError(400, 400, f"Unexpected character in the request body: {e}") from None


def error_response(e: ApiError, media_type: str = V1_JSON) -> Response:
    """Confluent's error body."""
    return JSONResponse(
        {"error_code": e.code, "message": e.message}, status_code=e.status, media_type=media_type
    )
