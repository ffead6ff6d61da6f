"""HTTP in, HTTP out: routing, CORS, body limits, and the one place errors become responses."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import flask

from . import chat
from .chat import REQUEST_ID_HEADER
from .chat_request import parse_chat_request, worst_case_tokens
from .errors import ApiError, ErrorCode, internal_error
from .instance import BrokenInstance, Instance
from .lago_accounts import Account
from .logs import bind_request, log, unbind_request

CHAT_PATH_SUFFIX = "/v1/chat/completions"
MODELS_PATH_SUFFIX = "/v1/models"
# Request headers a browser may send cross-origin: ours, and those of the ecosystem's clients
# (the openai package's x-stainless-* family, OpenAI's own headers, idempotency keys).
_CORS_HEADERS = frozenset(
    {"authorization", "content-type", "accept", "x-request-id", "idempotency-key"}
    | {"openai-organization", "openai-project", "openai-beta", "x-api-key"}
)
_CORS_HEADER_PREFIXES = ("x-stainless-",)
# Models have no release date here; ``created`` is when this instance started (OpenAI's field).
_STARTED = int(time.time())


def error_response(error: ApiError) -> flask.Response:
    response = flask.Response(json.dumps(error.to_dict()), status=error.status, mimetype="application/json")
    response.headers.update(error.headers)
    return response


def serve(
    request: flask.Request,
    instance: Instance | BrokenInstance,
    route: Callable[[flask.Request, Instance], flask.Response],
) -> flask.Response:
    """Run one route with the request's log labels; any error becomes our JSON error shape."""
    project = instance.settings.project_id if isinstance(instance, Instance) else ""
    token = bind_request(request.headers.get("X-Cloud-Trace-Context"), project)
    try:
        if isinstance(instance, BrokenInstance):
            raise instance.error()
        response = route(request, instance)
    except ApiError as error:
        response = error_response(error)
    except Exception as error:  # noqa: BLE001 - unknown errors become a generic, logged 500
        log("ERROR", "unhandled_error", error_class=type(error).__name__)
        response = error_response(internal_error())
    finally:
        unbind_request(token)
    if isinstance(instance, Instance):
        _apply_cors(request, response, instance.settings.cors_origins)
    if REQUEST_ID_HEADER not in response.headers:  # no call was made: an id for this response alone
        response.headers[REQUEST_ID_HEADER] = f"req_{uuid.uuid4().hex}"
    return response


def chat_route(request: flask.Request, instance: Instance) -> flask.Response:
    """``POST .../v1/chat/completions`` and ``GET .../v1/models`` under any prefix; ``OPTIONS`` for CORS."""
    path = request.path.rstrip("/")
    if path.endswith(MODELS_PATH_SUFFIX):
        return models_route(request, instance)
    if not path.endswith(CHAT_PATH_SUFFIX):
        raise ApiError(ErrorCode.NOT_FOUND, f"Unknown path; POST to {CHAT_PATH_SUFFIX}.")
    if request.method == "OPTIONS":
        return _preflight(request, instance.settings.cors_origins, "POST, OPTIONS")
    if request.method != "POST":
        raise ApiError(ErrorCode.METHOD_NOT_ALLOWED, "Use POST.", headers={"Allow": "POST, OPTIONS"})
    settings = instance.settings
    raw = read_body(request, settings.max_body_bytes)
    caller = instance.verifier.verify_authorization(request.headers.get("Authorization"))
    chat_request = parse_chat_request(raw, settings)
    if settings.require_billing and not instance.billing.enabled:
        raise ApiError(ErrorCode.UNAVAILABLE, "Chat is unavailable: billing is not working on this instance.")
    if chat_request.model in instance.unavailable_models:
        message = f"The model '{chat_request.model}' is not available: its provider credentials are missing."
        raise ApiError(ErrorCode.UNAVAILABLE, message)
    ledger = instance.billing.ledger(caller)
    if instance.accounts is not None:
        instance.accounts.ensure_subscription(ledger.payer, caller)
    if instance.budget is not None:
        ledger.hold(instance.budget.reserve(ledger.payer, chat_request.model, *worst_case_tokens(chat_request)))
    if chat_request.stream:
        call_id, lines = chat.open_event_stream(chat_request, ledger, settings.llm_timeout_s)
        return flask.Response(
            _labelled(lines, request.headers.get("X-Cloud-Trace-Context"), settings.project_id),
            mimetype="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", REQUEST_ID_HEADER: call_id},
        )
    body = chat.complete_json(chat_request, ledger, settings.llm_timeout_s)
    return flask.Response(json.dumps(body), mimetype="application/json", headers={REQUEST_ID_HEADER: body["id"]})


def models_route(request: flask.Request, instance: Instance) -> flask.Response:
    """``GET .../v1/models``: the allowed models, the default first, in OpenAI's list shape."""
    if request.method == "OPTIONS":
        return _preflight(request, instance.settings.cors_origins, "GET, OPTIONS")
    if request.method != "GET":
        raise ApiError(ErrorCode.METHOD_NOT_ALLOWED, "Use GET.", headers={"Allow": "GET, OPTIONS"})
    instance.verifier.verify_authorization(request.headers.get("Authorization"))
    data = [
        {
            "id": model,
            "object": "model",
            "created": _STARTED,
            "owned_by": model.partition("/")[0] if "/" in model else "system",
        }
        for model in instance.settings.chat_models
    ]
    return json_response({"object": "list", "data": data})


def usage_route(request: flask.Request, instance: Instance) -> flask.Response:
    """``GET``: the caller's usage in the current billing period, and their budget."""
    if request.method == "OPTIONS":
        return _preflight(request, instance.settings.cors_origins, "GET, OPTIONS")
    if request.method != "GET":
        raise ApiError(ErrorCode.METHOD_NOT_ALLOWED, "Use GET.", headers={"Allow": "GET, OPTIONS"})
    caller = instance.verifier.verify_authorization(request.headers.get("Authorization"))
    if instance.accounts is None:
        raise ApiError(ErrorCode.UNAVAILABLE, "Usage is not available: billing is not configured.")
    payer = instance.billing.subscription_for(caller)
    account = instance.accounts.account(payer)
    if account is None:
        raise ApiError(ErrorCode.UNAVAILABLE, "Usage is unavailable right now; try again shortly.")
    return json_response(usage_body(account, instance.budget.remaining(payer) if instance.budget else None))


def usage_body(account: Account, budget: tuple[int, int] | None) -> dict[str, Any]:
    return {
        "object": "usage",
        "period": {"from": account.from_datetime, "to": account.to_datetime},
        "currency": account.currency,
        "amount_cents": account.amount_cents,
        "total_amount_cents": account.total_amount_cents,
        "models": [
            {"model": m.model, "tokens": m.tokens, "amount_cents": m.amount_cents, "requests": m.events}
            for m in account.models
        ],
        "budget": {"limit_cents": budget[0], "remaining_cents": budget[1]} if budget else None,
    }


def read_body(request: flask.Request, limit: int) -> bytes:
    """The body, refused with a 413 past ``limit`` bytes (declared or actually sent)."""
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(ErrorCode.BODY_TOO_LARGE, f"The request body exceeds {limit} bytes.")
    raw = request.stream.read(limit + 1)
    if len(raw) > limit:
        raise ApiError(ErrorCode.BODY_TOO_LARGE, f"The request body exceeds {limit} bytes.")
    return raw


def _labelled(lines: Iterator[str], trace: str | None, project: str) -> Iterator[str]:
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
