"""The HTTP plumbing: routing, CORS, body reading, and the one place errors become responses.

Each function has a routing table (``routes.py``): path suffix -> method -> route. ``serve``
answers from it the 404 for an unknown path, the 405 (with ``Allow``) for a wrong method and the
CORS preflight; a route returns a response or raises ``ApiError``, which becomes our JSON shape here.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import flask

from .app_check import APP_CHECK_HEADER
from .body_guard import skip_body
from .errors import REQUEST_ID_HEADER, ApiError, ErrorCode, internal_error
from .instance import BrokenInstance, Instance
from .logs import bind_request, log, unbind_request
from .settings import DEFAULT_MAX_BODY_BYTES
from .shutdown import SHUTDOWN

# Request headers a browser may send cross-origin: ours, and those of the ecosystem's clients
# (the openai package's x-stainless-* family, OpenAI's own headers, idempotency keys).
_CORS_HEADERS = frozenset(
    {"authorization", "content-type", APP_CHECK_HEADER.lower(), "accept", "x-request-id", "idempotency-key"}
    | {"openai-organization", "openai-project", "openai-beta", "x-api-key"}
)
_CORS_HEADER_PREFIXES = ("x-stainless-",)
Route = Callable[[flask.Request, Instance], flask.Response]
# Path suffix ("" matches any path) -> HTTP method -> route. A suffix ending in ``ANY_REST``
# matches paths that go on past it (``/v1/models/{id}``, whose id may hold slashes).
Routes = Mapping[str, Mapping[str, Route]]
ANY_REST = "/*"


def error_response(error: ApiError) -> flask.Response:
    response = flask.Response(json.dumps(error.to_dict()), status=error.status, mimetype="application/json")
    response.headers.update(error.headers)
    return response


def serve(
    request: flask.Request, instance: Instance | BrokenInstance, routes: Routes, *, preflight: bool = True
) -> flask.Response:
    """Route one request with its log labels; any error becomes our JSON error shape.

    ``preflight``: the routes are called from web pages, so ``OPTIONS`` answers CORS preflights.
    """
    project = instance.settings.project_id if isinstance(instance, Instance) else ""
    token = bind_request(request.headers.get("X-Cloud-Trace-Context"), project)
    try:
        response = _dispatch(request, instance, routes, preflight)
    except ApiError as error:
        response = error_response(error)
    except Exception as error:  # noqa: BLE001 - unknown errors become a generic, logged 500
        log("ERROR", "unhandled_error", error_class=type(error).__name__)
        response = error_response(internal_error())
    finally:
        unbind_request(token)
    skip_body(request.environ)  # answered without (all of) it: don't wait for the rest
    _apply_cors(request, response, instance.cors_origins)
    if REQUEST_ID_HEADER not in response.headers:  # no call was made: an id for this response alone
        response.headers[REQUEST_ID_HEADER] = f"req_{uuid.uuid4().hex}"
    return response


def _dispatch(
    request: flask.Request, instance: Instance | BrokenInstance, routes: Routes, preflight: bool
) -> flask.Response:
    if isinstance(instance, BrokenInstance) and not (preflight and request.method == "OPTIONS"):
        raise instance.error()
    path = request.path.rstrip("/")
    suffix = next((suffix for suffix in routes if _matches(path, suffix)), None)
    if suffix is None:
        raise ApiError(ErrorCode.NOT_FOUND, f"Unknown path; {_usage_hint(routes)}.")
    methods = routes[suffix]
    allow = ", ".join([*methods, "OPTIONS"] if preflight else methods)
    if preflight and request.method == "OPTIONS":
        return _preflight(request, instance.cors_origins, allow)
    route = methods.get(request.method)
    if route is None:
        raise ApiError(ErrorCode.METHOD_NOT_ALLOWED, f"Use {' or '.join(methods)}.", headers={"Allow": allow})
    assert isinstance(instance, Instance)  # a broken one answered above
    if SHUTDOWN.draining:  # SIGTERM came: this instance takes no new work
        raise ApiError(ErrorCode.UNAVAILABLE, "This instance is shutting down; retry.", headers={"Retry-After": "1"})
    return route(request, instance)


def _matches(path: str, suffix: str) -> bool:
    if suffix.endswith(ANY_REST):  # the first route that matches wins: list the exact suffixes first
        return bool(path.partition(suffix[: -len(ANY_REST)] + "/")[2])
    return path.endswith(suffix)


def _usage_hint(routes: Routes) -> str:
    return " or ".join(f"{'/'.join(methods)} to {suffix}" for suffix, methods in routes.items())


def body_limit(instance: Instance | BrokenInstance) -> int:
    """The most a request body may hold (``CHAT_MAX_BODY_BYTES``; its default when misconfigured)."""
    return instance.settings.max_body_bytes if isinstance(instance, Instance) else DEFAULT_MAX_BODY_BYTES


def read_body(request: flask.Request, limit: int) -> bytes:
    """The body, refused with a 413 past ``limit`` bytes (declared or actually sent)."""
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(ErrorCode.BODY_TOO_LARGE, f"The request body exceeds {limit} bytes.")
    raw = request.stream.read(limit + 1)
    if len(raw) > limit:
        raise ApiError(ErrorCode.BODY_TOO_LARGE, f"The request body exceeds {limit} bytes.")
    return raw


def labelled_stream(lines: Iterator[str], trace: str | None, project: str) -> Iterator[str]:
    # The stream runs after the handler returned: bind its log labels again while it runs.
    token = bind_request(trace, project)
    try:
        yield from lines
    finally:
        close = getattr(lines, "close", None)
        if close is not None:
            close()  # runs the stream's own cleanup (partial billing) while labels are bound
        unbind_request(token)


def _allowed_origin(origin: str | None, allowed: tuple[str, ...]) -> str | None:
    if not origin:
        return None
    if "*" in allowed:
        return "*"
    return origin if origin in allowed else None


def _preflight(request: flask.Request, allowed: tuple[str, ...], methods: str) -> flask.Response:
    origin = _allowed_origin(request.headers.get("Origin"), allowed)
    if origin is None:
        raise ApiError(ErrorCode.FORBIDDEN, "This origin is not allowed to call the API.")
    response = flask.Response(status=204)
    response.headers["Access-Control-Allow-Methods"] = methods
    response.headers["Access-Control-Allow-Headers"] = _allowed_headers(
        request.headers.get("Access-Control-Request-Headers")
    )
    response.headers["Access-Control-Max-Age"] = "3600"
    return response


def _allowed_headers(requested: str | None) -> str:
    """The requested headers we allow (answered by name: ``*`` would not cover Authorization)."""
    names = [h.strip().lower() for h in (requested or "").split(",") if h.strip()]
    allowed = [h for h in names if h in _CORS_HEADERS or h.startswith(_CORS_HEADER_PREFIXES)]
    return ", ".join(dict.fromkeys(["authorization", "content-type", *allowed]))


def _apply_cors(request: flask.Request, response: flask.Response, allowed: tuple[str, ...]) -> None:
    origin = _allowed_origin(request.headers.get("Origin"), allowed)
    if origin is not None:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = REQUEST_ID_HEADER
        if origin != "*":
            response.headers.add("Vary", "Origin")


def json_response(body: dict[str, Any], status: int = 200) -> flask.Response:
    return flask.Response(json.dumps(body), status=status, mimetype="application/json")
