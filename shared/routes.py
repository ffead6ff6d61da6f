"""The endpoints: each route reads its request, calls one engine, and writes its response.

Routes are HTTP in, HTTP out; the plumbing around them (routing tables, CORS, errors as JSON)
is ``serving.py``, the work below them is the engines (``chat``, ``replay``).
"""

from __future__ import annotations

import time

import flask

from .app_check import APP_CHECK_HEADER
from .chat_request import parse_chat_request
from .errors import REQUEST_ID_HEADER, ApiError, ErrorCode
from .instance import Instance
from .invoker import verify_invoker
from .logs import log
from .replay import drain_outbox
from .serving import Routes, json_response, labelled_stream, read_body

CHAT_PATH_SUFFIX = "/v1/chat/completions"
MODELS_PATH_SUFFIX = "/v1/models"
# Models have no release date here; ``created`` is when this instance started (OpenAI's field).
_STARTED = int(time.time())


def chat_completions(request: flask.Request, instance: Instance) -> flask.Response:
    """``POST .../v1/chat/completions``: a JSON completion, or its server-sent events."""
    settings = instance.settings
    # The token first: an anonymous sender's body is never waited for.
    caller = instance.verifier.verify_authorization(request.headers.get("Authorization"))
    instance.sign_in.check(caller)
    raw = read_body(request, settings.max_body_bytes)
    chat_request = parse_chat_request(raw, settings)
    instance.app_check.check(request.headers.get(APP_CHECK_HEADER), chat_request.model)
    if not chat_request.stream:
        answer = instance.chat.complete(chat_request, caller)
        response = json_response(answer.body)
        response.headers.update(answer.headers)
        response.headers[REQUEST_ID_HEADER] = answer.body["id"]
        return response
    stream = instance.chat.stream(chat_request, caller)
    return flask.Response(
        labelled_stream(stream.lines, request.headers.get("X-Cloud-Trace-Context"), settings.project_id),
        mimetype="text/event-stream",
        headers={
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
            REQUEST_ID_HEADER: stream.call_id,
            **stream.headers,
        },
    )


def list_models(request: flask.Request, instance: Instance) -> flask.Response:
    """``GET .../v1/models``: the allowed models, the default first, in OpenAI's list shape."""
    instance.sign_in.check(instance.verifier.verify_authorization(request.headers.get("Authorization")))
    instance.app_check.check(request.headers.get(APP_CHECK_HEADER))
    consume = instance.settings.app_check.consume_models
    data = [
        {
            "id": model,
            "object": "model",
            "created": _STARTED,
            "owned_by": model.partition("/")[0] if "/" in model else "system",
            # The page sends these models a fresh limited-use App Check token: the server consumes it.
            **({"limited_use_app_check": True} if model in consume else {}),
        }
        for model in instance.settings.chat_models
    ]
    return json_response({"object": "list", "data": data})


def usage(request: flask.Request, instance: Instance) -> flask.Response:
    """``GET``: the caller's usage in the current billing period, and their budget."""
    caller = instance.verifier.verify_authorization(request.headers.get("Authorization"))
    instance.app_check.check(request.headers.get(APP_CHECK_HEADER))
    return json_response(instance.chat.usage(caller))


# The ``chat`` function answers under any prefix; ``usage`` at any path.
CHAT_ROUTES: Routes = {CHAT_PATH_SUFFIX: {"POST": chat_completions}, MODELS_PATH_SUFFIX: {"GET": list_models}}
USAGE_ROUTES: Routes = {"": {"GET": usage}}


def replay_billing(request: flask.Request, instance: Instance) -> flask.Response:
    """Drain the outbox; answers with the run's counts. IAM keeps the function private; the
    caller's OIDC token is checked here too."""
    verify_invoker(request.headers.get("Authorization"), instance.settings)
    billing = instance.billing
    if not billing.enabled or billing.client is None:
        raise ApiError(ErrorCode.UNAVAILABLE, "Billing is not configured on this instance.")
    if billing.outbox is None:
        raise ApiError(ErrorCode.UNAVAILABLE, "The billing outbox is disabled (BILLING_OUTBOX=false).")
    settings = instance.settings
    report = drain_outbox(
        billing.outbox, billing.client, page_size=settings.replay_batch_size, budget_s=settings.replay_budget_s
    )
    log("INFO" if report.remaining == 0 else "WARNING", "billing_replayed", **report.to_dict())
    return json_response(report.to_dict())


# Any path; no CORS preflight: only Cloud Scheduler calls it.
REPLAY_ROUTES: Routes = {"": {"POST": replay_billing}}
