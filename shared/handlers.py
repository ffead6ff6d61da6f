"""HTTP in, HTTP out: routing, CORS, body limits, and the one place errors become responses."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import flask
import litellm

from . import chat
from .chat_request import parse_chat_request
from .errors import ApiError, ErrorCode, internal_error
from .instance import BrokenInstance, Instance
from .lago_accounts import Account
from .logs import bind_request, log, unbind_request

CHAT_PATH_SUFFIX = "/v1/chat/completions"
MODELS_PATH_SUFFIX = "/v1/models"
_CORS_HEADERS = "Authorization, Content-Type"


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
        raise instance.billing_unavailable()
    if chat_request.model in instance.unavailable_models:
        message = f"The model '{chat_request.model}' is not available: its provider credentials are missing."
        raise ApiError(ErrorCode.UNAVAILABLE, message)
    ledger = instance.billing.ledger(caller)
    if instance.accounts is not None:
        instance.accounts.ensure_subscription(ledger.payer, caller)
    if instance.budget is not None:
        ledger.hold(
            instance.budget.reserve(
                ledger.payer,
                chat_request.model,
                litellm.token_counter(model=chat_request.model, messages=chat_request.messages),
                chat_request.params["max_tokens"],
            )
        )
    if chat_request.stream:
        lines = chat.open_event_stream(chat_request, ledger, settings.llm_timeout_s)
        return flask.Response(
            _labelled(lines, request.headers.get("X-Cloud-Trace-Context"), settings.project_id),
            mimetype="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    body = chat.complete_json(chat_request, ledger, settings.llm_timeout_s)
    return flask.Response(json.dumps(body), mimetype="application/json")


def models_route(request: flask.Request, instance: Instance) -> flask.Response:
    """``GET .../v1/models``: the allowed models, the default first, in OpenAI's list shape."""
    if request.method == "OPTIONS":
        return _preflight(request, instance.settings.cors_origins, "GET, OPTIONS")
    if request.method != "GET":
        raise ApiError(ErrorCode.METHOD_NOT_ALLOWED, "Use GET.", headers={"Allow": "GET, OPTIONS"})
    instance.verifier.verify_authorization(request.headers.get("Authorization"))
    data = [
        {"id": model, "object": "model", "owned_by": model.partition("/")[0] if "/" in model else "system"}
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
    response.headers["Access-Control-Allow-Headers"] = _CORS_HEADERS
    response.headers["Access-Control-Max-Age"] = "3600"
    return response


def _apply_cors(request: flask.Request, response: flask.Response, allowed: tuple[str, ...]) -> None:
    origin = _allowed_origin(request.headers.get("Origin"), allowed)
    if origin is not None:
        response.headers["Access-Control-Allow-Origin"] = origin
        if origin != "*":
            response.headers.add("Vary", "Origin")


def json_response(body: dict[str, Any], status: int = 200) -> flask.Response:
    return flask.Response(json.dumps(body), status=status, mimetype="application/json")
